// Shared helpers of the bindings: Status -> Python exception, zero-copy vector -> ndarray.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <stdexcept>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed::python {

namespace nb = nanobind;

// Thrown by bindings, translated to ValueError / OSError / IndexError in module.cc.
struct StatusError : std::runtime_error {
  StatusCode code;
  explicit StatusError(const Status& s) : std::runtime_error(s.message()), code(s.code()) {}
};

inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError(s);
}

template <typename T>
T ValueOrThrow(Result<T>&& r) {
  ThrowIfError(r.status());
  return std::move(r).value();
}

// Hands the vector's buffer to numpy without a copy; the capsule frees it.
template <typename T, typename Alloc>
nb::ndarray<nb::numpy, T, nb::ndim<1>> ToNumpy(std::vector<T, Alloc>&& v) {
  using Vec = std::vector<T, Alloc>;
  auto* heap = new Vec(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<Vec*>(p); });
  size_t shape[1] = {heap->size()};
  return nb::ndarray<nb::numpy, T, nb::ndim<1>>(heap->data(), 1, shape, owner);
}

using RowArray = nb::ndarray<const int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

}  // namespace cellfeed::python
