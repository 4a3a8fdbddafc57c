// OpenAI-style error objects: {"error": {"message", "type", "param", "code"}} with the HTTP status that goes with
// them. Every rejection of client input is one of these (never a 500).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace rf::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::optional<std::string> param;  // the offending request field, e.g. "messages[2].role"
  std::optional<std::string> code;   // e.g. "invalid_api_key", "model_not_found"

  nlohmann::ordered_json to_json() const;
  std::string body() const;  // to_json() serialized
};

ApiError invalid_request(std::string message, std::optional<std::string> param = std::nullopt,
                         std::optional<std::string> code = std::nullopt);
ApiError unauthorized(std::string message);                                               // 401
ApiError not_found(std::string message, std::optional<std::string> code = std::nullopt);  // 404
ApiError payload_too_large(size_t limit_bytes);                                           // 413
ApiError server_overloaded(std::string message);                                          // 503
ApiError server_shutting_down(std::string message);                                       // 503
ApiError internal_error(std::string message);  // 500 (engine failures only, never for input)

// JSON text that never throws on invalid UTF-8 in strings (invalid bytes become U+FFFD).
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace rf::server
