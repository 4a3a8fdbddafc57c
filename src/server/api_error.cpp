#include "server/api_error.h"

namespace rf::server {

nlohmann::ordered_json ApiError::to_json() const {
  nlohmann::ordered_json e = nlohmann::ordered_json::object();
  e["message"] = message;
  e["type"] = type;
  e["param"] = param ? nlohmann::ordered_json(*param) : nlohmann::ordered_json(nullptr);
  e["code"] = code ? nlohmann::ordered_json(*code) : nlohmann::ordered_json(nullptr);
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  out["error"] = std::move(e);
  return out;
}

std::string ApiError::body() const { return dump_json(to_json()); }

ApiError invalid_request(std::string message, std::optional<std::string> param, std::optional<std::string> code) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

ApiError unauthorized(std::string message) {
  return ApiError{401, std::move(message), "invalid_request_error", std::nullopt, "invalid_api_key"};
}

ApiError not_found(std::string message, std::optional<std::string> code) {
  return ApiError{404, std::move(message), "invalid_request_error", std::nullopt, std::move(code)};
}

ApiError payload_too_large(size_t limit_bytes) {
  return ApiError{413, "request body too large: the limit is " + std::to_string(limit_bytes) + " bytes",
                  "invalid_request_error", std::nullopt, "request_too_large"};
}

ApiError server_overloaded(std::string message) {
  return ApiError{503, std::move(message), "server_error", std::nullopt, "server_overloaded"};
}

ApiError server_shutting_down(std::string message) {
  return ApiError{503, std::move(message), "server_error", std::nullopt, "server_shutting_down"};
}

ApiError internal_error(std::string message) {
  return ApiError{500, std::move(message), "server_error", std::nullopt, "internal_error"};
}

std::string dump_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace rf::server
