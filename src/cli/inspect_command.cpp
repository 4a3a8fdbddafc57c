#include "cli/inspect_command.h"

#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "core/default_model.h"
#include "gguf/gguf.h"

namespace rf::cli {
namespace {

using nlohmann::json;

// JSON of a metadata value; arrays longer than max_items keep their first items and report the count.
json value_to_json(const gguf::Value& v, size_t max_items) {
  return std::visit(
      [&](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, gguf::Array>) {
          json items = json::array();
          for (size_t i = 0; i < x.items.size() && i < max_items; ++i) items.push_back(value_to_json(x.items[i], max_items));
          if (x.items.size() <= max_items) return items;
          return json{{"type", "array"},
                      {"elem_type", std::string(gguf::value_type_name(x.elem_type))},
                      {"count", x.items.size()},
                      {"head", items}};
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          return static_cast<int>(x);
        } else {
          return x;
        }
      },
      v.data);
}

std::string value_to_text(const gguf::Value& v, size_t max_items) {
  if (const gguf::Array* a = v.array()) {
    std::string out = "[";
    for (size_t i = 0; i < a->items.size() && i < max_items; ++i) {
      if (i) out += ", ";
      out += value_to_text(a->items[i], max_items);
    }
    if (a->items.size() > max_items) out += fmt::format(", ... ({} {} items)", a->items.size(), gguf::value_type_name(a->elem_type));
    return out + "]";
  }
  if (const std::string* s = v.string()) {
    std::string shown = s->size() > 200 ? s->substr(0, 200) + fmt::format("... ({} bytes)", s->size()) : *s;
    return json(shown).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return value_to_json(v, max_items).dump();
}

std::string shape_text(const gguf::TensorInfo& t) {
  std::string s;
  for (int d = 0; d < t.n_dims; ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
  return s.empty() ? "scalar" : s;
}

// The architecture's hyper-parameters: every `<arch>.*` key, in file order.
std::vector<const gguf::KeyValue*> hparam_keys(const gguf::File& f, const std::string& arch) {
  std::vector<const gguf::KeyValue*> out;
  if (arch.empty()) return out;
  for (const auto& kv : f.metadata()) {
    if (kv.key.rfind(arch + ".", 0) == 0) out.push_back(&kv);
  }
  return out;
}

struct TypeTotal {
  size_t tensors = 0;
  int64_t elements = 0;
  size_t bytes = 0;
};

}  // namespace

int run_inspect(const InspectOptions& opts) {
  const std::string path = opts.model.empty() ? default_model_path() : opts.model;
  auto file = gguf::File::open(path);
  if (!file.ok()) {
    std::fprintf(stderr, "rocmforge: %s\n", file.error_message().c_str());
    return 1;
  }
  const gguf::File& f = **file;
  const std::string arch = f.get_or<std::string>("general.architecture", "").ok()
                               ? *f.get_or<std::string>("general.architecture", "")
                               : "";
  std::map<std::string, TypeTotal> totals;
  TypeTotal all;
  for (const auto& t : f.tensors()) {
    TypeTotal& tt = totals[std::string(quant::type_name(t.type))];
    ++tt.tensors;
    tt.elements += t.n_elements();
    tt.bytes += t.n_bytes;
    ++all.tensors;
    all.elements += t.n_elements();
    all.bytes += t.n_bytes;
  }

  if (opts.json) {
    json j;
    j["file"] = path;
    j["file_bytes"] = f.file_size();
    j["version"] = f.version();
    j["alignment"] = f.alignment();
    j["data_offset"] = f.data_offset();
    j["architecture"] = arch;
    json meta = json::object();
    for (const auto& kv : f.metadata()) meta[kv.key] = value_to_json(kv.value, opts.max_array_items);
    j["metadata"] = meta;
    json hp = json::object();
    for (const auto* kv : hparam_keys(f, arch)) hp[kv->key.substr(arch.size() + 1)] = value_to_json(kv->value, opts.max_array_items);
    j["hparams"] = hp;
    json tensors = json::array();
    for (const auto& t : f.tensors()) {
      json shape = json::array();
      for (int d = 0; d < t.n_dims; ++d) shape.push_back(t.ne[d]);
      tensors.push_back({{"name", t.name},
                         {"type", std::string(quant::type_name(t.type))},
                         {"shape", shape},
                         {"offset", t.offset},
                         {"bytes", t.n_bytes}});
    }
    j["tensors"] = tensors;
    json per_type = json::object();
    for (const auto& [name, tt] : totals) per_type[name] = {{"tensors", tt.tensors}, {"elements", tt.elements}, {"bytes", tt.bytes}};
    j["totals"] = {{"tensors", all.tensors}, {"elements", all.elements}, {"bytes", all.bytes}, {"per_type", per_type}};
    std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
    return 0;
  }

  fmt::print("file:         {} ({} bytes)\n", path, f.file_size());
  fmt::print("gguf version: {}   alignment: {}   data offset: {}\n", f.version(), f.alignment(), f.data_offset());
  fmt::print("architecture: {}\n", arch.empty() ? "(none)" : arch);
  fmt::print("\nmetadata ({} keys):\n", f.metadata().size());
  for (const auto& kv : f.metadata()) {
    fmt::print("  {:<40} {:<8} {}\n", kv.key, gguf::value_type_name(kv.value.type()), value_to_text(kv.value, opts.max_array_items));
  }
  auto hp = hparam_keys(f, arch);
  if (!hp.empty()) {
    fmt::print("\nhyper-parameters ({}):\n", arch);
    for (const auto* kv : hp) fmt::print("  {:<32} {}\n", kv->key.substr(arch.size() + 1), value_to_text(kv->value, opts.max_array_items));
  }
  fmt::print("\ntensors ({}):\n", f.tensors().size());
  if (!f.tensors().empty()) fmt::print("  {:<36} {:<8} {:<22} {:>12} {:>12}\n", "name", "type", "shape", "offset", "bytes");
  for (const auto& t : f.tensors()) {
    fmt::print("  {:<36} {:<8} {:<22} {:>12} {:>12}\n", t.name, quant::type_name(t.type), shape_text(t), t.offset, t.n_bytes);
  }
  fmt::print("\ntotals per type:\n");
  for (const auto& [name, tt] : totals) {
    fmt::print("  {:<8} {:>5} tensors {:>14} elements {:>14} bytes\n", name, tt.tensors, tt.elements, tt.bytes);
  }
  fmt::print("  {:<8} {:>5} tensors {:>14} elements {:>14} bytes ({:.2f} MiB)\n", "all", all.tensors, all.elements, all.bytes,
             static_cast<double>(all.bytes) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace rf::cli
