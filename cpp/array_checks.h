// Boundary checks for arrays passed from Python: dtype, C-contiguity, writeability, shape.
// Every check raises a Python exception naming the argument; kernels then trust their inputs.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <sstream>
#include <utility>
#include <string>
#include <vector>

namespace fs_py {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
  os << (a.ndim() == 1 ? ",)" : ")");
  return os.str();
}

// The argument as a NumPy array, or a TypeError naming it. Nothing is converted: a list passed
// where an array is expected would become a temporary copy, and an output written into it
// would be lost (or, once the copy is freed, written through a dangling pointer).
inline py::array array_arg(py::handle obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy.ndarray, got " +
                         std::string(Py_TYPE(obj.ptr())->tp_name));
  return py::reinterpret_borrow<py::array>(obj);
}

// Data pointer of array argument `obj` after checking it. expected: one entry per dimension,
// -1 for "any". The pointer stays valid while the caller holds obj (the binding's argument).
template <class T>
T* checked_data(py::handle obj, const char* name, const std::vector<py::ssize_t>& expected,
                bool writeable) {
  const py::array a = array_arg(obj, name);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != static_cast<py::ssize_t>(expected.size()))
    throw py::value_error(std::string(name) + ": expected " + std::to_string(expected.size()) +
                          " dimensions, got shape " + shape_str(a));
  for (size_t i = 0; i < expected.size(); ++i)
    if (expected[i] >= 0 && a.shape(i) != expected[i])
      throw py::value_error(std::string(name) + ": shape " + shape_str(a) + " does not match; axis " +
                            std::to_string(i) + " must be " + std::to_string(expected[i]));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": array must be C-contiguous (use np.ascontiguousarray)");
  if (writeable && !a.writeable())
    throw py::value_error(std::string(name) + ": array is read-only but is written in place");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

// An array argument by name, for check_outputs_disjoint.
struct NamedArray {
  const char* name;
  py::handle array;  // None: an optional argument not given
};

// Outputs are written in place while the other arguments are read: an output that shares
// memory with any other array argument would give results depending on the order of the
// writes. The first n_outputs entries of `arrays` are outputs; every array has passed
// checked_data (C-contiguous: one byte range each).
inline void check_outputs_disjoint(const std::vector<NamedArray>& arrays, size_t n_outputs) {
  auto range = [](py::handle h) {
    const auto a = py::reinterpret_borrow<py::array>(h);
    const char* p = static_cast<const char*>(a.data());
    return std::make_pair(p, p + a.nbytes());
  };
  for (size_t i = 0; i < n_outputs; ++i) {
    if (arrays[i].array.is_none()) continue;
    const auto out = range(arrays[i].array);
    for (size_t j = 0; j < arrays.size(); ++j) {
      if (j == i || arrays[j].array.is_none()) continue;
      const auto other = range(arrays[j].array);
      if (out.first < other.second && other.first < out.second)
        throw py::value_error(std::string(arrays[i].name) + ": shares memory with " + arrays[j].name +
                              " (outputs are written in place)");
    }
  }
}

}  // namespace fs_py
