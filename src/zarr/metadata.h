// A zarr node's metadata (v2: .zarray/.zattrs/.zgroup; v3: zarr.json), parsed once at
// open into one form for both versions. JSON is read defensively: every field is checked
// for presence and type, and a mismatch is an error naming the store, the node and what
// was expected (nlohmann's value()/get() would throw on a type mismatch).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cellfeed/dtype.h"
#include "cellfeed/status.h"
#include "io/codec/filter_pipeline.h"

namespace cellfeed::zarr {

using Json = nlohmann::json;

struct ArrayMeta {
  int zarr_format = 2;
  std::vector<int64_t> shape;
  std::vector<int64_t> chunks;  // the chunks the reader decodes (inner chunks when sharded)
  DType dtype = DType::kFloat32;
  bool is_string = false;            // vlen-utf8 strings (v2 "|O" + vlen-utf8, v3 "string")
  std::vector<uint8_t> fill_value;   // one element (numeric arrays)
  std::vector<io::codec::Filter> codecs;  // in encoding order (decoding runs them backwards)
  // Chunk keys: node + "/" + key_prefix + coordinates joined by separator.
  std::string key_prefix;
  char separator = '.';
  // sharding_indexed: chunk keys name shards of shard_shape, holding inner chunks.
  bool sharded = false;
  std::vector<int64_t> shard_shape;
  bool index_at_start = false;
  bool index_crc32c = false;
};

struct Node {
  enum class Kind { kMissing, kGroup, kArray } kind = Kind::kMissing;
  Json attributes = Json::object();
  // Array metadata, parsed when the node is used as an array (see ParseArray).
  Json array_json;
  int zarr_format = 2;
};

// Where a node is, for messages: "<store>: <node>".
std::string Where(const std::string& store, const std::string& node);

// Parses an array node's metadata (v2 .zarray or v3 zarr.json content).
Result<ArrayMeta> ParseArray(const Node& node, const std::string& where);

// Attribute helpers: absent -> nullopt; present with another type -> Invalid.
Result<std::optional<std::string>> StringAttr(const Node& n, const std::string& key,
                                              const std::string& where);
Result<std::optional<std::vector<std::string>>> StringListAttr(const Node& n,
                                                               const std::string& key,
                                                               const std::string& where);
Result<std::optional<std::vector<int64_t>>> IntListAttr(const Node& n, const std::string& key,
                                                        const std::string& where);
Result<std::optional<bool>> BoolAttr(const Node& n, const std::string& key,
                                     const std::string& where);

// JSON text -> object, with the parse error and its byte offset in the message.
Result<Json> ParseJsonObject(const std::string& text, const std::string& where);

}  // namespace cellfeed::zarr
