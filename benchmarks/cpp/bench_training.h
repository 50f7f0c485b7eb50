// Shared set-up of the C++ training benchmarks: S networks initialised from seeds 0..S-1 and
// the TrainArgs of a fused run over shared data (X, Y), sigmoid cross-entropy, default Adam.
#pragma once
#include <vector>

#include "falsestruct/network_host.h"

template <class T>
struct BenchTraining {
  std::vector<uint64_t> seeds;
  std::vector<T> theta, m, v;
  std::vector<double> loss_history, acc_history;
  fs::TrainArgs<T> args;

  // X (N, d) and Y (N, 1) must outlive this object. Loss recorded every `record_every` epochs.
  BenchTraining(const fs::NetShape& shape, int S, const std::vector<T>& X, const std::vector<T>& Y,
                int N, int B, int epochs, int record_every, fs::ShuffleMode shuffle)
      : seeds(S), theta((size_t)S * shape.n_params), m(theta.size()), v(theta.size()) {
    for (int s = 0; s < S; ++s) seeds[s] = s;
    fs::net_init_host(shape, seeds.data(), S, theta.data(), 1);
    const int n_records = fs::n_records_for(epochs, record_every);
    loss_history.resize((size_t)S * n_records);
    acc_history.resize(loss_history.size());
    args.shape = shape;
    args.loss = fs::LossKind::SigmoidCE;
    args.shuffle = shuffle;
    args.X = X.data();
    args.x_net_stride = 0;
    args.Y = Y.data();
    args.y_net_stride = 0;
    args.N = N;
    args.B = B;
    args.epochs = epochs;
    args.step0 = 0;
    args.theta = theta.data();
    args.adam_m = m.data();
    args.adam_v = v.data();
    args.seeds = seeds.data();
    args.record_every = record_every;
    args.n_records = n_records;
    args.loss_history = loss_history.data();
    args.acc_history = acc_history.data();
  }
};
