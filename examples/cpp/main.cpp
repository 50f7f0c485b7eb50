// Trains 16 Experiment I networks (MLP 2-104-1, sigmoid cross-entropy, TF1 Adam) with the
// fused CPU training loop of the falsestruct C++ core, without Python.
//
// Training set: kPoints points x = (x1, delta * f_a(x1)) with label f_a(x1) = ceil(a / x1)
// mod 2, x1 evenly spaced on [b, 1], b = a / (K + 1): the paper's T^r_delta with a grid in
// place of random draws.
//
// Prints one line per network, "seed initial_loss final_loss" (mean loss over the training
// set before and after training, float64); exits 1 if a loss is not finite.
#include <falsestruct/network_host.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

int main() {
  constexpr int kSeeds = 16, kPoints = 50, kBatch = 10, kEpochs = 300;
  constexpr double a = 20, K = 26, delta = 1e-4;

  const int widths[] = {2, 104, 1};
  fs::NetShape shape;
  if (!fs::make_mlp_shape(widths, 3, &shape)) {
    std::fprintf(stderr, "invalid network widths\n");
    return 1;
  }
  const int64_t P = shape.n_params;
  const int n_threads = std::max(1u, std::thread::hardware_concurrency());

  // X (N, 2) and Y (N, 1), row-major, shared by all networks (net stride 0).
  std::vector<double> X(2 * kPoints), Y(kPoints);
  const double b = a / (K + 1);
  for (int i = 0; i < kPoints; ++i) {
    const double x1 = b + (1 - b) * (i + 0.5) / kPoints;
    const double label = std::fmod(std::ceil(a / x1), 2.0);
    X[2 * i] = x1;
    X[2 * i + 1] = delta * label;
    Y[i] = label;
  }

  // Network s starts from Glorot weights of seed s and shuffles its samples with seed s.
  std::vector<uint64_t> seeds(kSeeds);
  for (int s = 0; s < kSeeds; ++s) seeds[s] = static_cast<uint64_t>(s);
  std::vector<double> theta(kSeeds * P), adam_m(kSeeds * P, 0.0), adam_v(kSeeds * P, 0.0);
  std::vector<double> initial(kSeeds), final(kSeeds), grad(kSeeds * P);
  std::vector<double> epoch_loss(kSeeds), epoch_acc(kSeeds);  // one record: the last epoch

  try {
    fs::net_init_host(shape, seeds.data(), kSeeds, theta.data(), n_threads);
    fs::net_loss_and_grad_host<double>(shape, fs::LossKind::SigmoidCE, theta.data(), kSeeds, X.data(), 0,
                               Y.data(), 0, kPoints, initial.data(), grad.data(), nullptr,
                               n_threads);

    fs::TrainArgs<double> args;
    args.shape = shape;
    args.loss = fs::LossKind::SigmoidCE;
    args.shuffle = fs::ShuffleMode::Samples;
    args.adam = fs::AdamHyper{};  // lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8
    args.X = X.data();
    args.x_net_stride = 0;
    args.Y = Y.data();
    args.y_net_stride = 0;
    args.N = kPoints;
    args.B = kBatch;
    args.epochs = kEpochs;
    args.step0 = 0;
    args.theta = theta.data();
    args.adam_m = adam_m.data();
    args.adam_v = adam_v.data();
    args.seeds = seeds.data();
    args.record_every = kEpochs;
    args.n_records = fs::n_records_for(kEpochs, kEpochs);
    args.loss_history = epoch_loss.data();
    args.acc_history = epoch_acc.data();
    // the Python engines' default mode: subnormal numbers flushed to zero (falsestruct/fp_env.h)
    const fs::SubnormalModeScope flush_subnormals(true);
    fs::RunControl control;  // no progress polling, no cancellation
    fs::net_train_host(args, kSeeds, n_threads, control, nullptr, 0.0);

    fs::net_loss_and_grad_host<double>(shape, fs::LossKind::SigmoidCE, theta.data(), kSeeds, X.data(), 0,
                               Y.data(), 0, kPoints, final.data(), grad.data(), nullptr,
                               n_threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "training failed: %s\n", e.what());
    return 1;
  }

  bool finite = true;
  for (int s = 0; s < kSeeds; ++s) {
    std::printf("%d %.17g %.17g\n", s, initial[s], final[s]);
    finite = finite && std::isfinite(initial[s]) && std::isfinite(final[s]);
  }
  return finite ? 0 : 1;
}
