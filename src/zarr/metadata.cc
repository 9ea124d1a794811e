#include "zarr/metadata.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace cellfeed::zarr {

std::string Where(const std::string& store, const std::string& node) {
  return store + ": " + (node.empty() ? std::string("/") : node);
}

Result<Json> ParseJsonObject(const std::string& text, const std::string& where) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Re-parse with exceptions for the position of the error.
    std::string why = "not valid JSON";
    try {
      (void)Json::parse(text);
    } catch (const Json::parse_error& e) {
      why = e.what();
    }
    return Status::Invalid(where + ": broken metadata: " + why);
  }
  if (!j.is_object()) return Status::Invalid(where + ": metadata is not a JSON object");
  return j;
}

namespace {

const char* TypeName(const Json& j) { return j.type_name(); }

const Json& OrNull(const Json* j) {
  static const Json kNull;
  return j ? *j : kNull;
}

Status Expected(const std::string& where, const std::string& field, const char* what,
                const Json& got) {
  return Status::Invalid(where + ": metadata field '" + field + "' must be " + what + ", found " +
                         TypeName(got) + " " + got.dump().substr(0, 80));
}

const Json* Field(const Json& j, const std::string& key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

Result<std::vector<int64_t>> IntList(const Json* j, const std::string& where,
                                     const std::string& field) {
  if (j == nullptr) return Status::Invalid(where + ": metadata field '" + field + "' is missing");
  if (!j->is_array()) return Expected(where, field, "a list of integers", *j);
  std::vector<int64_t> out;
  for (const Json& v : *j) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0) {
      return Expected(where, field, "a list of non-negative integers", *j);
    }
    out.push_back(v.get<int64_t>());
  }
  return out;
}

Result<std::string> String(const Json* j, const std::string& where, const std::string& field) {
  if (j == nullptr) return Status::Invalid(where + ": metadata field '" + field + "' is missing");
  if (!j->is_string()) return Expected(where, field, "a string", *j);
  return j->get<std::string>();
}

// numpy type strings of zarr v2 ("<f4", "|b1", ">i8").
Result<DType> V2DType(const std::string& s, bool* big_endian, const std::string& where) {
  static const struct { const char* code; DType t; } kTypes[] = {
      {"b1", DType::kBool}, {"i1", DType::kInt8}, {"i2", DType::kInt16}, {"i4", DType::kInt32},
      {"i8", DType::kInt64}, {"u1", DType::kUInt8}, {"u2", DType::kUInt16},
      {"u4", DType::kUInt32}, {"u8", DType::kUInt64}, {"f4", DType::kFloat32},
      {"f8", DType::kFloat64}};
  if (s.size() == 3 && (s[0] == '<' || s[0] == '>' || s[0] == '|')) {
    for (const auto& k : kTypes) {
      if (s.compare(1, 2, k.code) == 0) {
        *big_endian = s[0] == '>' && DTypeSize(k.t) > 1;
        return k.t;
      }
    }
  }
  return Status::Unsupported(where + ": dtype '" + s + "' is not supported (bool, int8-64, "
                             "uint8-64, float32/64 or vlen-utf8 strings expected)");
}

Result<DType> V3DType(const std::string& s, const std::string& where) {
  static const struct { const char* name; DType t; } kTypes[] = {
      {"bool", DType::kBool}, {"int8", DType::kInt8}, {"int16", DType::kInt16},
      {"int32", DType::kInt32}, {"int64", DType::kInt64}, {"uint8", DType::kUInt8},
      {"uint16", DType::kUInt16}, {"uint32", DType::kUInt32}, {"uint64", DType::kUInt64},
      {"float32", DType::kFloat32}, {"float64", DType::kFloat64}};
  for (const auto& k : kTypes) {
    if (s == k.name) return k.t;
  }
  return Status::Unsupported(where + ": data_type '" + s + "' is not supported (bool, int8-64, "
                             "uint8-64, float32/64 or string expected)");
}

template <typename T>
void Store(T v, std::vector<uint8_t>& out) {
  out.resize(sizeof(T));
  std::memcpy(out.data(), &v, sizeof(T));
}

// fill_value: null (zeros), a number, true/false, "NaN" / "Infinity" / "-Infinity", or
// (v3) a hex string of the value's bytes. Strings' fill values are not used.
Status ParseFill(const Json* j, DType t, const std::string& where, std::vector<uint8_t>& out) {
  out.assign(DTypeSize(t), 0);
  if (j == nullptr || j->is_null()) return Status::OK();
  double d = 0;
  bool is_float_word = false;
  if (j->is_string()) {
    const std::string s = j->get<std::string>();
    if (s == "NaN") d = std::numeric_limits<double>::quiet_NaN(), is_float_word = true;
    else if (s == "Infinity") d = std::numeric_limits<double>::infinity(), is_float_word = true;
    else if (s == "-Infinity") d = -std::numeric_limits<double>::infinity(), is_float_word = true;
    else if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && s.size() == 2 + 2 * DTypeSize(t)) {
      // Big-endian hex of the bytes (zarr v3 spec for floats).
      for (size_t i = 0; i < DTypeSize(t); ++i) {
        out[DTypeSize(t) - 1 - i] = static_cast<uint8_t>(std::stoul(s.substr(2 + 2 * i, 2), nullptr, 16));
      }
      return Status::OK();
    } else {
      return Expected(where, "fill_value", "a number, null, \"NaN\" or \"Infinity\"", *j);
    }
    if (t != DType::kFloat32 && t != DType::kFloat64) {
      return Status::Invalid(where + ": fill_value '" + s + "' for an integer array");
    }
  } else if (j->is_boolean()) {
    d = j->get<bool>() ? 1 : 0;
  } else if (j->is_number_integer() && (t == DType::kInt64 || t == DType::kUInt64)) {
    if (t == DType::kInt64) Store<int64_t>(j->get<int64_t>(), out);
    else Store<uint64_t>(j->get<uint64_t>(), out);
    return Status::OK();
  } else if (j->is_number()) {
    d = j->get<double>();
  } else {
    return Expected(where, "fill_value", "a number, null, \"NaN\" or \"Infinity\"", *j);
  }
  (void)is_float_word;
  ConvertElements(DType::kFloat64, &d, t, out.data(), 1);
  return Status::OK();
}

std::string CodecName(const Json& c) {
  const Json* n = Field(c, "name");
  if (!n) n = Field(c, "id");
  return n && n->is_string() ? n->get<std::string>() : "";
}

// A bytes->bytes compressor / checksum shared by v2 (numcodecs ids) and v3 (names).
Result<std::optional<io::codec::Filter>> Compressor(const std::string& name, int version,
                                                    const std::string& where) {
  using namespace io::codec;
  if (name == "blosc") return std::optional<Filter>(Filter{kCodecBlosc, name, {}});
  if (name == "zstd") return std::optional<Filter>(Filter{kCodecZstd, name, {}});
  if (name == "gzip") return std::optional<Filter>(Filter{kCodecGzip, name, {}});
  if (name == "zlib" && version == 2) return std::optional<Filter>(Filter{kFilterDeflate, name, {}});
  if (name == "lz4" && version == 2) return std::optional<Filter>(Filter{kCodecLz4, name, {}});
  if (name == "crc32c" && version == 3) return std::optional<Filter>(Filter{kCodecCrc32c, name, {}});
  return std::optional<Filter>();
}

Result<ArrayMeta> ParseV2(const Json& a, const std::string& where) {
  ArrayMeta m;
  m.zarr_format = 2;
  CF_ASSIGN_OR_RETURN(m.shape, IntList(Field(a, "shape"), where, "shape"));
  CF_ASSIGN_OR_RETURN(m.chunks, IntList(Field(a, "chunks"), where, "chunks"));
  const Json* dt = Field(a, "dtype");
  if (dt == nullptr) return Status::Invalid(where + ": metadata field 'dtype' is missing");
  if (!dt->is_string()) {
    return Status::Unsupported(where + ": structured dtype " + dt->dump().substr(0, 80) +
                               " is not supported");
  }
  const std::string dts = dt->get<std::string>();
  bool big = false;
  bool object = dts == "|O";
  if (!object) {
    CF_ASSIGN_OR_RETURN(m.dtype, V2DType(dts, &big, where));
  }
  const Json* order = Field(a, "order");
  std::string ord = "C";
  if (order && !order->is_null()) {
    CF_ASSIGN_OR_RETURN(ord, String(order, where, "order"));
  }
  if (ord != "C" && ord != "F") return Expected(where, "order", "\"C\" or \"F\"", *order);
  const Json* sep = Field(a, "dimension_separator");
  if (sep && !sep->is_null()) {
    CF_ASSIGN_OR_RETURN(std::string s, String(sep, where, "dimension_separator"));
    if (s != "." && s != "/") return Expected(where, "dimension_separator", "\".\" or \"/\"", *sep);
    m.separator = s[0];
  }
  // Encoding order: the filters, then the compressor. F order is a transposed chunk.
  if (ord == "F" && m.chunks.size() == 2) {
    m.codecs.push_back({io::codec::kCodecTranspose, "transpose",
                        {static_cast<unsigned>(m.chunks[0]), static_cast<unsigned>(m.chunks[1])}});
  } else if (ord == "F" && m.chunks.size() > 2) {
    return Status::Unsupported(where + ": order F with more than 2 dimensions");
  }
  if (big) m.codecs.push_back({io::codec::kCodecByteSwap, "big-endian", {}});
  const Json* filters = Field(a, "filters");
  if (filters && !filters->is_null()) {
    if (!filters->is_array()) return Expected(where, "filters", "a list or null", *filters);
    for (const Json& f : *filters) {
      const std::string id = CodecName(f);
      if (id == "vlen-utf8") {
        m.is_string = true;
        continue;
      }
      return Status::Unsupported(where + ": filter '" + (id.empty() ? f.dump() : id) +
                                 "' is not supported (vlen-utf8 only)");
    }
  }
  if (object && !m.is_string) {
    return Status::Unsupported(where + ": object dtype without the vlen-utf8 filter");
  }
  if (!object && m.is_string) {
    return Status::Invalid(where + ": vlen-utf8 filter on a non-object dtype '" + dts + "'");
  }
  const Json* comp = Field(a, "compressor");
  if (comp && !comp->is_null()) {
    if (!comp->is_object()) return Expected(where, "compressor", "an object or null", *comp);
    const std::string id = CodecName(*comp);
    CF_ASSIGN_OR_RETURN(auto c, Compressor(id, 2, where));
    if (!c) {
      return Status::Unsupported(where + ": compressor '" + (id.empty() ? comp->dump() : id) +
                                 "' is not supported (blosc, zstd, gzip, zlib, lz4 or none)");
    }
    m.codecs.push_back(*c);
  }
  if (!m.is_string) CF_RETURN_IF_ERROR(ParseFill(Field(a, "fill_value"), m.dtype, where, m.fill_value));
  return m;
}

// A v3 codec chain (of an array, or inside a shard): array->array, one array->bytes,
// then bytes->bytes.
Status ParseV3Codecs(const Json* codecs, const std::vector<int64_t>& chunk, bool inner,
                     const std::string& where, ArrayMeta& m) {
  if (codecs == nullptr || !codecs->is_array() || codecs->empty()) {
    return Status::Invalid(where + ": metadata field 'codecs' must be a non-empty list");
  }
  bool have_bytes = false;
  for (const Json& c : *codecs) {
    const std::string name = CodecName(c);
    const Json* conf = Field(c, "configuration");
    if (name.empty()) return Expected(where, "codecs", "a list of named codecs", *codecs);
    if (name == "transpose") {
      if (have_bytes) return Status::Invalid(where + ": transpose after the array->bytes codec");
      CF_ASSIGN_OR_RETURN(auto order, IntList(Field(OrNull(conf), "order"), where,
                                              "transpose.order"));
      bool identity = true;
      for (size_t i = 0; i < order.size(); ++i) identity &= order[i] == static_cast<int64_t>(i);
      if (identity) continue;
      if (order.size() != 2 || chunk.size() != 2) {
        return Status::Unsupported(where + ": transpose other than [1, 0] of a 2-D array");
      }
      m.codecs.push_back({io::codec::kCodecTranspose, "transpose",
                          {static_cast<unsigned>(chunk[0]), static_cast<unsigned>(chunk[1])}});
      continue;
    }
    if (name == "bytes" || name == "vlen-utf8" || name == "sharding_indexed") {
      if (have_bytes) return Status::Invalid(where + ": more than one array->bytes codec");
      have_bytes = true;
      if (name == "vlen-utf8") {
        if (!m.is_string) return Status::Invalid(where + ": vlen-utf8 codec on a non-string array");
        continue;
      }
      if (name == "bytes") {
        if (m.is_string) return Status::Invalid(where + ": string array without vlen-utf8");
        const Json* endian = Field(OrNull(conf), "endian");
        if (endian && !endian->is_null()) {
          CF_ASSIGN_OR_RETURN(std::string e, String(endian, where, "bytes.endian"));
          if (e == "big") {
            if (DTypeSize(m.dtype) > 1) m.codecs.push_back({io::codec::kCodecByteSwap, "big-endian", {}});
          } else if (e != "little") {
            return Expected(where, "bytes.endian", "\"little\" or \"big\"", *endian);
          }
        } else if (DTypeSize(m.dtype) > 1) {
          return Status::Invalid(where + ": bytes codec without 'endian' for a " +
                                 DTypeName(m.dtype) + " array");
        }
        continue;
      }
      // sharding_indexed: the chunk grid names shards; the reader decodes inner chunks.
      if (inner) return Status::Unsupported(where + ": nested sharding is not supported");
      if (!m.codecs.empty()) {
        return Status::Unsupported(where + ": codecs before sharding_indexed are not supported");
      }
      if (conf == nullptr || !conf->is_object()) {
        return Status::Invalid(where + ": sharding_indexed needs a configuration object");
      }
      m.sharded = true;
      m.shard_shape = m.chunks;
      CF_ASSIGN_OR_RETURN(m.chunks, IntList(Field(*conf, "chunk_shape"), where,
                                            "sharding_indexed.chunk_shape"));
      if (m.chunks.size() != m.shard_shape.size()) {
        return Status::Invalid(where + ": inner chunk_shape rank differs from the shard's");
      }
      for (size_t d = 0; d < m.chunks.size(); ++d) {
        if (m.chunks[d] == 0 || m.shard_shape[d] % m.chunks[d] != 0) {
          return Status::Invalid(where + ": shard shape is not a multiple of the inner chunk "
                                 "shape");
        }
      }
      const Json* loc = Field(*conf, "index_location");
      if (loc && !loc->is_null()) {
        CF_ASSIGN_OR_RETURN(std::string l, String(loc, where, "index_location"));
        if (l != "start" && l != "end") return Expected(where, "index_location", "start or end", *loc);
        m.index_at_start = l == "start";
      }
      const Json* ic = Field(*conf, "index_codecs");
      if (ic == nullptr || !ic->is_array()) {
        return Status::Invalid(where + ": sharding_indexed needs index_codecs");
      }
      for (const Json& x : *ic) {
        const std::string n = CodecName(x);
        const Json* xc = Field(x, "configuration");
        const Json* e = xc ? Field(*xc, "endian") : nullptr;
        if (n == "bytes" && (!e || (e->is_string() && e->get<std::string>() == "little"))) continue;
        if (n == "crc32c") { m.index_crc32c = true; continue; }
        return Status::Unsupported(where + ": shard index codec " + x.dump().substr(0, 80) +
                                   " is not supported (bytes little-endian, crc32c)");
      }
      CF_RETURN_IF_ERROR(ParseV3Codecs(Field(*conf, "codecs"), m.chunks, true, where, m));
      continue;
    }
    if (!have_bytes) return Status::Invalid(where + ": codec '" + name + "' before the array->bytes codec");
    CF_ASSIGN_OR_RETURN(auto comp, Compressor(name, 3, where));
    if (!comp) {
      return Status::Unsupported(where + ": codec '" + name + "' is not supported (transpose, "
                                 "bytes, vlen-utf8, sharding_indexed, blosc, zstd, gzip, crc32c)");
    }
    m.codecs.push_back(*comp);
  }
  if (!have_bytes) return Status::Invalid(where + ": codecs lack an array->bytes codec");
  return Status::OK();
}

Result<ArrayMeta> ParseV3(const Json& a, const std::string& where) {
  ArrayMeta m;
  m.zarr_format = 3;
  CF_ASSIGN_OR_RETURN(m.shape, IntList(Field(a, "shape"), where, "shape"));
  const Json* grid = Field(a, "chunk_grid");
  if (!grid || !grid->is_object()) {
    return Status::Invalid(where + ": metadata field 'chunk_grid' must be an object");
  }
  CF_ASSIGN_OR_RETURN(std::string gname, String(Field(*grid, "name"), where, "chunk_grid.name"));
  if (gname != "regular") {
    return Status::Unsupported(where + ": chunk_grid '" + gname + "' (regular expected)");
  }
  const Json* gconf = Field(*grid, "configuration");
  CF_ASSIGN_OR_RETURN(m.chunks, IntList(gconf ? Field(*gconf, "chunk_shape") : nullptr, where,
                                        "chunk_grid.configuration.chunk_shape"));
  if (m.chunks.size() != m.shape.size()) {
    return Status::Invalid(where + ": chunk_shape has rank " + std::to_string(m.chunks.size()) +
                           ", shape has rank " + std::to_string(m.shape.size()));
  }
  const Json* dt = Field(a, "data_type");
  if (dt == nullptr) return Status::Invalid(where + ": metadata field 'data_type' is missing");
  if (!dt->is_string()) {
    return Status::Unsupported(where + ": data_type " + dt->dump().substr(0, 80) +
                               " is not supported");
  }
  const std::string dts = dt->get<std::string>();
  if (dts == "string" || dts == "variable_length_utf8") {
    m.is_string = true;
  } else {
    CF_ASSIGN_OR_RETURN(m.dtype, V3DType(dts, where));
  }
  const Json* cke = Field(a, "chunk_key_encoding");
  std::string kname = "default";
  const Json* kconf = nullptr;
  if (cke && cke->is_object()) {
    CF_ASSIGN_OR_RETURN(kname, String(Field(*cke, "name"), where, "chunk_key_encoding.name"));
    kconf = Field(*cke, "configuration");
  } else if (cke) {
    return Expected(where, "chunk_key_encoding", "an object", *cke);
  }
  if (kname == "default") {
    m.key_prefix = "c/";
    m.separator = '/';
  } else if (kname == "v2") {
    m.separator = '.';
  } else {
    return Status::Unsupported(where + ": chunk_key_encoding '" + kname + "' (default or v2)");
  }
  const Json* sep = kconf ? Field(*kconf, "separator") : nullptr;
  if (sep && !sep->is_null()) {
    CF_ASSIGN_OR_RETURN(std::string s, String(sep, where, "chunk_key_encoding.separator"));
    if (s != "." && s != "/") return Expected(where, "chunk_key_encoding.separator", "\".\" or \"/\"", *sep);
    m.separator = s[0];
  }
  const Json* st = Field(a, "storage_transformers");
  if (st && st->is_array() && !st->empty()) {
    return Status::Unsupported(where + ": storage_transformers are not supported");
  }
  CF_RETURN_IF_ERROR(ParseV3Codecs(Field(a, "codecs"), m.chunks, false, where, m));
  if (!m.is_string) CF_RETURN_IF_ERROR(ParseFill(Field(a, "fill_value"), m.dtype, where, m.fill_value));
  return m;
}

}  // namespace

Result<ArrayMeta> ParseArray(const Node& node, const std::string& where) {
  if (node.kind != Node::Kind::kArray) return Status::Invalid(where + ": expected an array");
  CF_ASSIGN_OR_RETURN(ArrayMeta m, node.zarr_format == 3 ? ParseV3(node.array_json, where)
                                                         : ParseV2(node.array_json, where));
  if (m.shape.size() != m.chunks.size()) {
    return Status::Invalid(where + ": chunks has rank " + std::to_string(m.chunks.size()) +
                           " but shape has rank " + std::to_string(m.shape.size()));
  }
  for (int64_t c : m.chunks) {
    if (c <= 0 && !m.shape.empty()) return Status::Invalid(where + ": chunk sizes must be positive");
  }
  if (m.shape.size() > 2) {
    return Status::Unsupported(where + ": arrays of more than 2 dimensions are not read");
  }
  return m;
}

namespace {
const Json* Attr(const Node& n, const std::string& key) { return Field(n.attributes, key); }
}  // namespace

Result<std::optional<std::string>> StringAttr(const Node& n, const std::string& key,
                                              const std::string& where) {
  const Json* j = Attr(n, key);
  if (!j) return std::optional<std::string>();
  if (!j->is_string()) {
    return Status::Invalid(where + ": attribute '" + key + "' must be a string, found " +
                           TypeName(*j) + " " + j->dump().substr(0, 80));
  }
  return std::optional<std::string>(j->get<std::string>());
}

Result<std::optional<std::vector<std::string>>> StringListAttr(const Node& n,
                                                               const std::string& key,
                                                               const std::string& where) {
  const Json* j = Attr(n, key);
  if (!j) return std::optional<std::vector<std::string>>();
  std::vector<std::string> out;
  if (j->is_string()) {  // a single column is sometimes written as a bare string
    out.push_back(j->get<std::string>());
    return std::optional<std::vector<std::string>>(out);
  }
  if (!j->is_array()) {
    return Status::Invalid(where + ": attribute '" + key + "' must be a list of strings, found " +
                           TypeName(*j));
  }
  for (const Json& v : *j) {
    if (!v.is_string()) {
      return Status::Invalid(where + ": attribute '" + key + "' must be a list of strings, found "
                             "an element of type " + TypeName(v));
    }
    out.push_back(v.get<std::string>());
  }
  return std::optional<std::vector<std::string>>(out);
}

Result<std::optional<std::vector<int64_t>>> IntListAttr(const Node& n, const std::string& key,
                                                        const std::string& where) {
  const Json* j = Attr(n, key);
  if (!j) return std::optional<std::vector<int64_t>>();
  auto r = IntList(j, where, "attributes." + key);
  if (!r.ok()) return r.status();
  return std::optional<std::vector<int64_t>>(r.value());
}

Result<std::optional<bool>> BoolAttr(const Node& n, const std::string& key,
                                     const std::string& where) {
  const Json* j = Attr(n, key);
  if (!j) return std::optional<bool>();
  if (!j->is_boolean()) {
    return Status::Invalid(where + ": attribute '" + key + "' must be true or false, found " +
                           TypeName(*j));
  }
  return std::optional<bool>(j->get<bool>());
}

}  // namespace cellfeed::zarr
