// Boundary checks for GPU arrays passed from Python: any object exposing
// __cuda_array_interface__ (CuPy, Numba, PyTorch, ...). The same rules and messages as
// cpp/array_checks.h for NumPy: dtype (TypeError), dimensions, shape, C-contiguity,
// writeability of outputs, outputs disjoint from inputs (ValueError), each naming the argument;
// plus: the data must be on the calling thread's current device. Only the interface's fields are
// read here; no array memory is touched until every check has passed. Header-only and free of
// CUDA calls (the device of a pointer is asked through DeviceContext), so that the test-suite
// runs these checks in the CPU build (_native.cuda_emulation.check_cuda_args).
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "falsestruct/network.h"
#include "network_args.h"

namespace fs_cuda_py {
namespace py = pybind11;

// Where array data must live: `device` (the current one), and how to ask a pointer's device
// (-1: not device memory, e.g. a host pointer).
struct DeviceContext {
  int device = 0;
  std::function<int(uintptr_t)> device_of;
};

// The fields of one __cuda_array_interface__ (versions 0 to 3).
struct CudaArray {
  uintptr_t ptr = 0;
  std::vector<int64_t> shape;
  std::string typestr;
  bool readonly = false;
  int64_t itemsize = 0;
  int64_t size() const {
    int64_t n = 1;
    for (int64_t v : shape) n *= v;
    return n;
  }
  int64_t nbytes() const { return size() * itemsize; }
};

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << (shape.size() == 1 ? ",)" : ")");
  return os.str();
}

// The NumPy dtype name of a typestr ("<f4" -> float32), for messages.
inline std::string dtype_name(const std::string& typestr) {
  if (typestr.size() < 3) return typestr;
  const std::string code = typestr.substr(1);
  if (code == "f4") return "float32";
  if (code == "f8") return "float64";
  if (code == "i4") return "int32";
  if (code == "i8") return "int64";
  if (code == "u8") return "uint64";
  if (code == "f2") return "float16";
  return typestr;
}

template <class T>
const char* dtype_of();
template <>
inline const char* dtype_of<float>() { return "float32"; }
template <>
inline const char* dtype_of<double>() { return "float64"; }
template <>
inline const char* dtype_of<int>() { return "int32"; }
template <>
inline const char* dtype_of<uint64_t>() { return "uint64"; }

// Parses obj.__cuda_array_interface__: TypeError naming `name` when there is none or it is
// malformed, ValueError for a masked or non-C-contiguous array.
inline CudaArray cuda_array_arg(py::handle obj, const char* name) {
  const std::string n(name);
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw py::type_error(n + ": expected a GPU array (an object with __cuda_array_interface__, e.g. a "
                         "cupy.ndarray), got " + std::string(Py_TYPE(obj.ptr())->tp_name));
  const py::object cai = obj.attr("__cuda_array_interface__");
  if (!py::isinstance<py::dict>(cai)) throw py::type_error(n + ": __cuda_array_interface__ is not a dict");
  const auto d = py::reinterpret_borrow<py::dict>(cai);
  auto field = [&](const char* key) -> py::object {
    if (!d.contains(key)) throw py::type_error(n + ": __cuda_array_interface__ has no '" + key + "'");
    return d[key];
  };
  CudaArray a;
  try {
    const int version = field("version").cast<int>();
    if (version < 0 || version > 3)
      throw py::type_error(n + ": __cuda_array_interface__ version " + std::to_string(version) +
                           " is not supported (0 to 3)");
    for (const auto v : field("shape").cast<py::tuple>()) {
      const int64_t dim = v.cast<int64_t>();
      if (dim < 0) throw py::type_error(n + ": __cuda_array_interface__ has a negative dimension");
      a.shape.push_back(dim);
    }
    a.typestr = field("typestr").cast<std::string>();
    const auto data = field("data").cast<py::tuple>();
    if (data.size() != 2) throw py::type_error(n + ": __cuda_array_interface__ 'data' must be (pointer, read_only)");
    a.ptr = data[0].cast<uintptr_t>();
    a.readonly = data[1].cast<bool>();
  } catch (const py::cast_error&) {
    throw py::type_error(n + ": malformed __cuda_array_interface__");
  }
  if (a.typestr.size() != 3 || (a.typestr[0] != '<' && a.typestr[0] != '=' && a.typestr[0] != '|') ||
      (a.typestr[2] < '1' || a.typestr[2] > '8'))
    throw py::type_error(n + ": unsupported typestr '" + a.typestr + "' (little-endian numbers only)");
  a.itemsize = a.typestr[2] - '0';
  if (d.contains("mask") && !d["mask"].is_none())
    throw py::value_error(n + ": masked GPU arrays are not supported");
  if (d.contains("strides") && !d["strides"].is_none()) {
    std::vector<int64_t> strides;
    try {
      for (const auto v : d["strides"].cast<py::tuple>()) strides.push_back(v.cast<int64_t>());
    } catch (const py::cast_error&) {
      throw py::type_error(n + ": malformed __cuda_array_interface__ strides");
    }
    if (strides.size() != a.shape.size())
      throw py::type_error(n + ": __cuda_array_interface__ strides and shape differ in length");
    // C order: each axis of more than one element steps over the axes after it. Empty arrays
    // have no elements to step over.
    int64_t step = a.itemsize;
    bool contiguous = true;
    for (size_t i = a.shape.size(); i-- > 0;) {
      if (a.shape[i] > 1 && strides[i] != step) contiguous = false;
      step *= a.shape[i];
    }
    if (!contiguous && a.size() > 0)
      throw py::value_error(n + ": GPU array must be C-contiguous (use cupy.ascontiguousarray)");
  }
  return a;
}

// Data pointer of GPU array argument `obj` after checking dtype, dimensions, shape (expected:
// -1 = any), C-contiguity, writeability and device.
template <class T>
T* device_data(const DeviceContext& ctx, py::handle obj, const char* name,
               const std::vector<int64_t>& expected, bool writeable, CudaArray* parsed = nullptr) {
  const CudaArray a = cuda_array_arg(obj, name);
  const std::string n(name);
  if (dtype_name(a.typestr) != dtype_of<T>())
    throw py::type_error(n + ": expected dtype " + dtype_of<T>() + ", got " + dtype_name(a.typestr));
  if (a.shape.size() != expected.size())
    throw py::value_error(n + ": expected " + std::to_string(expected.size()) + " dimensions, got shape " +
                          shape_str(a.shape));
  for (size_t i = 0; i < expected.size(); ++i)
    if (expected[i] >= 0 && a.shape[i] != expected[i])
      throw py::value_error(n + ": shape " + shape_str(a.shape) + " does not match; axis " +
                            std::to_string(i) + " must be " + std::to_string(expected[i]));
  if (writeable && a.readonly)
    throw py::value_error(n + ": array is read-only but is written in place");
  if (a.size() > 0) {
    if (a.ptr == 0) throw py::value_error(n + ": GPU array has a null data pointer");
    const int dev = ctx.device_of ? ctx.device_of(a.ptr) : ctx.device;
    if (dev < 0) throw py::value_error(n + ": data is not in GPU memory");
    if (dev != ctx.device)
      throw py::value_error(n + ": data is on GPU " + std::to_string(dev) + " but the current device is GPU " +
                            std::to_string(ctx.device) + " (use cupy.cuda.Device(" + std::to_string(dev) +
                            ") or copy it)");
  }
  if (parsed) *parsed = a;
  return reinterpret_cast<T*>(a.ptr);
}

// True when GPU array `obj` holds float64 (else float32 is expected: device_data checks it).
inline bool is_float64(py::handle obj, const char* name) {
  return dtype_name(cuda_array_arg(obj, name).typestr) == "float64";
}

inline int leading_dim(py::handle obj, const char* name) {
  const CudaArray a = cuda_array_arg(obj, name);
  if (a.shape.empty())
    throw py::value_error(std::string(name) + ": expected an array with a leading network axis, got a scalar");
  return fs_py::int_count(a.shape[0], name, "networks");
}

// X (N, cols) shared or (S, N, cols): the pointer, the per-network stride and N.
template <class T>
const T* data_array(const DeviceContext& ctx, py::handle obj, const char* name, int S, int cols,
                    int64_t* net_stride, int* N) {
  const CudaArray a = cuda_array_arg(obj, name);
  if (a.shape.size() == 2) {
    *N = fs_py::int_count(a.shape[0], name, "rows");
    *net_stride = 0;
    return device_data<T>(ctx, obj, name, {-1, cols}, false);
  }
  *N = a.shape.size() == 3 ? fs_py::int_count(a.shape[1], name, "rows") : 0;
  *net_stride = static_cast<int64_t>(*N) * cols;
  return device_data<T>(ctx, obj, name, {S, -1, cols}, false);
}

// As fs_py::check_outputs_disjoint, on device byte ranges (every array already checked).
inline void check_outputs_disjoint(const std::vector<fs_py::NamedArray>& arrays, size_t n_outputs) {
  auto range = [](const fs_py::NamedArray& x) {
    const CudaArray a = cuda_array_arg(x.array, x.name);
    return std::make_pair(a.ptr, a.ptr + static_cast<uintptr_t>(a.nbytes()));
  };
  for (size_t i = 0; i < n_outputs; ++i) {
    if (arrays[i].array.is_none()) continue;
    const auto out = range(arrays[i]);
    for (size_t j = 0; j < arrays.size(); ++j) {
      if (j == i || arrays[j].array.is_none()) continue;
      const auto other = range(arrays[j]);
      if (out.first < other.second && other.first < out.second)
        throw py::value_error(std::string(arrays[i].name) + ": shares memory with " + arrays[j].name +
                              " (outputs are written in place)");
    }
  }
}

// How fs_py's argument checks (cpp/network_args.h: forward_args, loss_grad_args, train_args,
// deepfool_args, flipping_scale_args) read GPU arrays: on the device of `ctx`.
struct GpuArrays {
  const DeviceContext& ctx;
  static int leading_dim(py::handle obj, const char* name) { return fs_cuda_py::leading_dim(obj, name); }
  template <class T>
  T* data(py::handle obj, const char* name, const std::vector<int64_t>& expected, bool writeable) const {
    return device_data<T>(ctx, obj, name, expected, writeable);
  }
  template <class T>
  const T* rows(py::handle obj, const char* name, int S, int cols, int64_t* net_stride, int* N) const {
    return data_array<T>(ctx, obj, name, S, cols, net_stride, N);
  }
  static void disjoint(const std::vector<fs_py::NamedArray>& arrays, size_t n_outputs) {
    fs_cuda_py::check_outputs_disjoint(arrays, n_outputs);
  }
};

}  // namespace fs_cuda_py
