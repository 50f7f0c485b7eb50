// Submodule falsestruct_fast._native.cuda_emulation: the CUDA kernels' device code run on the
// CPU through the emulating executors, so that the test-suite checks their logic (index
// mapping, shared-memory staging, barriers, reductions) on machines without a GPU. Each
// kernel family registers its functions from its own file (cpp/emulate_*.cpp).
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_layer_kernels_emulation(py::module_& m);
void register_network_emulation(py::module_& m);

void register_point_kernels_emulation(py::module_& m);
void register_fused_mlp_emulation(py::module_& m);

void register_cuda_emulation(py::module_& m) {
  (void)m;  // kernel families add their register_* calls here
  register_layer_kernels_emulation(m);
  register_network_emulation(m);
  register_point_kernels_emulation(m);
  register_fused_mlp_emulation(m);
}
