#include "zarr/hierarchy.h"

#include <set>

namespace cellfeed::zarr {

std::string SanitizeJson(const std::string& t) {
  std::string out;
  out.reserve(t.size());
  bool in_string = false;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < t.size()) out += t[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (t.compare(i, 3, "NaN") == 0) { out += "null"; i += 2; continue; }
    if (t.compare(i, 8, "Infinity") == 0) { out += "null"; i += 7; continue; }
    if (t.compare(i, 9, "-Infinity") == 0) { out += "null"; i += 8; continue; }
    out += c;
  }
  return out;
}

Result<std::optional<Json>> Hierarchy::ReadJson(const std::string& key) const {
  CF_ASSIGN_OR_RETURN(auto text, store_->Read(key));
  if (!text) return std::optional<Json>();
  CF_ASSIGN_OR_RETURN(Json j, ParseJsonObject(SanitizeJson(*text), path() + ": " + key));
  return std::optional<Json>(std::move(j));
}

Result<std::unique_ptr<Hierarchy>> Hierarchy::Open(const std::string& path) {
  auto h = std::unique_ptr<Hierarchy>(new Hierarchy());
  CF_ASSIGN_OR_RETURN(h->store_, Store::Open(path));
  CF_ASSIGN_OR_RETURN(auto root3, h->ReadJson("zarr.json"));
  if (root3) {
    h->format_ = 3;
    auto f = root3->find("zarr_format");
    if (f == root3->end() || !f->is_number_integer() || f->get<int>() != 3) {
      return Status::Invalid(path + ": zarr.json: zarr_format must be 3");
    }
    auto c = root3->find("consolidated_metadata");
    if (c != root3->end() && c->is_object()) {
      auto m = c->find("metadata");
      if (m != c->end() && m->is_object()) {
        for (auto it = m->begin(); it != m->end(); ++it) h->consolidated_[it.key()] = it.value();
      }
    }
    h->consolidated_[""] = *root3;
    return h;
  }
  h->format_ = 2;
  CF_ASSIGN_OR_RETURN(auto zmeta, h->ReadJson(".zmetadata"));
  if (zmeta) {
    auto m = zmeta->find("metadata");
    if (m == zmeta->end() || !m->is_object()) {
      return Status::Invalid(path + ": .zmetadata: field 'metadata' must be an object");
    }
    for (auto it = m->begin(); it != m->end(); ++it) h->consolidated_[it.key()] = it.value();
  }
  return h;
}

Result<Node> Hierarchy::Get(const std::string& node) const {
  Node n;
  n.zarr_format = format_;
  const std::string where = Where(node);
  const std::string pre = node.empty() ? "" : node + "/";
  if (format_ == 3) {
    std::optional<Json> j;
    auto it = consolidated_.find(node);
    if (it != consolidated_.end()) {
      j = it->second;
    } else {
      CF_ASSIGN_OR_RETURN(j, ReadJson(pre + "zarr.json"));
    }
    if (!j) return n;
    if (!j->is_object()) return Status::Invalid(where + ": metadata is not a JSON object");
    auto t = j->find("node_type");
    if (t == j->end() || !t->is_string()) {
      return Status::Invalid(where + ": zarr.json: 'node_type' must be \"array\" or \"group\"");
    }
    const std::string type = t->get<std::string>();
    if (type == "array") {
      n.kind = Node::Kind::kArray;
    } else if (type == "group") {
      n.kind = Node::Kind::kGroup;
    } else {
      return Status::Invalid(where + ": zarr.json: node_type '" + type +
                             "' (\"array\" or \"group\" expected)");
    }
    auto a = j->find("attributes");
    if (a != j->end() && !a->is_null()) {
      if (!a->is_object()) return Status::Invalid(where + ": zarr.json: 'attributes' must be an object");
      n.attributes = *a;
    }
    if (n.kind == Node::Kind::kArray) n.array_json = std::move(*j);
    return n;
  }
  auto get = [&](const std::string& key) -> Result<std::optional<Json>> {
    if (!consolidated_.empty()) {
      auto it = consolidated_.find(key);
      if (it != consolidated_.end()) return std::optional<Json>(it->second);
    }
    return ReadJson(key);
  };
  CF_ASSIGN_OR_RETURN(auto zarray, get(pre + ".zarray"));
  if (zarray) {
    n.kind = Node::Kind::kArray;
    n.array_json = std::move(*zarray);
  } else {
    CF_ASSIGN_OR_RETURN(auto zgroup, get(pre + ".zgroup"));
    if (!zgroup) return n;
    n.kind = Node::Kind::kGroup;
  }
  CF_ASSIGN_OR_RETURN(auto attrs, get(pre + ".zattrs"));
  if (attrs) {
    if (!attrs->is_object()) return Status::Invalid(where + ": .zattrs is not a JSON object");
    n.attributes = std::move(*attrs);
  }
  return n;
}

std::vector<std::string> Hierarchy::Children(const std::string& node) const {
  std::set<std::string> out;
  const std::string pre = node.empty() ? "" : node + "/";
  for (const auto& [key, _] : consolidated_) {
    if (key.compare(0, pre.size(), pre) != 0 || key.size() == pre.size()) continue;
    std::string name = key.substr(pre.size());
    name = name.substr(0, name.find('/'));
    if (!name.empty() && name[0] != '.') out.insert(name);
  }
  for (const std::string& name : store_->List(node)) {
    if (name[0] != '.' && name != "zarr.json") out.insert(name);
  }
  return {out.begin(), out.end()};
}

}  // namespace cellfeed::zarr
