#include "cellfeed/dtype.h"

#include <cstring>

namespace cellfeed {

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kBool: case DType::kInt8: case DType::kUInt8: return 1;
    case DType::kInt16: case DType::kUInt16: return 2;
    case DType::kInt32: case DType::kUInt32: case DType::kFloat32: return 4;
    case DType::kInt64: case DType::kUInt64: case DType::kFloat64: return 8;
  }
  return 0;
}

std::string DTypeName(DType t) {
  switch (t) {
    case DType::kBool: return "bool";
    case DType::kInt8: return "int8";
    case DType::kInt16: return "int16";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kUInt8: return "uint8";
    case DType::kUInt16: return "uint16";
    case DType::kUInt32: return "uint32";
    case DType::kUInt64: return "uint64";
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
  }
  return "?";
}

bool DTypeIsInteger(DType t) {
  return t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kBool;
}

bool DTypeIsSigned(DType t) {
  return t == DType::kInt8 || t == DType::kInt16 || t == DType::kInt32 || t == DType::kInt64 ||
         t == DType::kFloat32 || t == DType::kFloat64;
}

namespace {

template <typename From, typename To>
void ConvertTyped(const void* src, void* dst, size_t n) {
  const From* s = static_cast<const From*>(src);
  To* d = static_cast<To*>(dst);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<To>(s[i]);
}

template <typename From>
void ConvertFrom(const void* src, DType to, void* dst, size_t n) {
  switch (to) {
    case DType::kBool: {
      const From* s = static_cast<const From*>(src);
      bool* d = static_cast<bool*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = s[i] != From(0);
      return;
    }
    case DType::kInt8: return ConvertTyped<From, int8_t>(src, dst, n);
    case DType::kInt16: return ConvertTyped<From, int16_t>(src, dst, n);
    case DType::kInt32: return ConvertTyped<From, int32_t>(src, dst, n);
    case DType::kInt64: return ConvertTyped<From, int64_t>(src, dst, n);
    case DType::kUInt8: return ConvertTyped<From, uint8_t>(src, dst, n);
    case DType::kUInt16: return ConvertTyped<From, uint16_t>(src, dst, n);
    case DType::kUInt32: return ConvertTyped<From, uint32_t>(src, dst, n);
    case DType::kUInt64: return ConvertTyped<From, uint64_t>(src, dst, n);
    case DType::kFloat32: return ConvertTyped<From, float>(src, dst, n);
    case DType::kFloat64: return ConvertTyped<From, double>(src, dst, n);
  }
}

}  // namespace

void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count) {
  if (from == to) {
    std::memcpy(dst, src, count * DTypeSize(from));
    return;
  }
  switch (from) {
    case DType::kBool: return ConvertFrom<uint8_t>(src, to, dst, count);
    case DType::kInt8: return ConvertFrom<int8_t>(src, to, dst, count);
    case DType::kInt16: return ConvertFrom<int16_t>(src, to, dst, count);
    case DType::kInt32: return ConvertFrom<int32_t>(src, to, dst, count);
    case DType::kInt64: return ConvertFrom<int64_t>(src, to, dst, count);
    case DType::kUInt8: return ConvertFrom<uint8_t>(src, to, dst, count);
    case DType::kUInt16: return ConvertFrom<uint16_t>(src, to, dst, count);
    case DType::kUInt32: return ConvertFrom<uint32_t>(src, to, dst, count);
    case DType::kUInt64: return ConvertFrom<uint64_t>(src, to, dst, count);
    case DType::kFloat32: return ConvertFrom<float>(src, to, dst, count);
    case DType::kFloat64: return ConvertFrom<double>(src, to, dst, count);
  }
}

}  // namespace cellfeed
