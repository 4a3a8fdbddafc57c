// POST /v1/chat/completions and POST /v1/completions: validate, build the prompt (chat template + tokenizer),
// submit n sequences to the engine, and answer as one JSON body or as a Server-Sent Events stream.
#pragma once

#include <memory>

#include "server/http_server.h"
#include "server/request.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace rf::server {

void handle_generation(Endpoint endpoint, std::shared_ptr<const ServedModel> model, Metrics& metrics,
                       const httplib::Request& req, httplib::Response& res);

// Writes an OpenAI error object with its status into res.
void set_error(httplib::Response& res, const ApiError& err);

}  // namespace rf::server
