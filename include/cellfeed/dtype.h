// Element types cellfeed reads from files and hands out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cellfeed {

enum class DType : uint8_t {
  kBool, kInt8, kInt16, kInt32, kInt64, kUInt8, kUInt16, kUInt32, kUInt64, kFloat32, kFloat64,
};

size_t DTypeSize(DType t);
std::string DTypeName(DType t);  // numpy spelling: "float32", "int64", "bool", ...
bool DTypeIsInteger(DType t);
bool DTypeIsSigned(DType t);

template <typename T> constexpr DType DTypeOf();
template <> constexpr DType DTypeOf<bool>() { return DType::kBool; }
template <> constexpr DType DTypeOf<int8_t>() { return DType::kInt8; }
template <> constexpr DType DTypeOf<int16_t>() { return DType::kInt16; }
template <> constexpr DType DTypeOf<int32_t>() { return DType::kInt32; }
template <> constexpr DType DTypeOf<int64_t>() { return DType::kInt64; }
template <> constexpr DType DTypeOf<uint8_t>() { return DType::kUInt8; }
template <> constexpr DType DTypeOf<uint16_t>() { return DType::kUInt16; }
template <> constexpr DType DTypeOf<uint32_t>() { return DType::kUInt32; }
template <> constexpr DType DTypeOf<uint64_t>() { return DType::kUInt64; }
template <> constexpr DType DTypeOf<float>() { return DType::kFloat32; }
template <> constexpr DType DTypeOf<double>() { return DType::kFloat64; }

// Converts `count` elements from `src` (type `from`) into `dst` (type `to`), as numpy's astype.
void ConvertElements(DType from, const void* src, DType to, void* dst, size_t count);

}  // namespace cellfeed
