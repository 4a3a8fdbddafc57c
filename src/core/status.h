// Status / Expected<T>: errors from input are values, not exceptions.
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace rf {

// A failed operation's message, e.g. "gguf: tensor 'x': data ends at byte 9 but the file has 8".
class Status {
 public:
  Status() = default;
  static Status error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const std::string& message() const { return message_; }

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}
  bool failed_ = false;
  std::string message_;
};

inline Status ok_status() { return Status(); }

// Either a value or an error Status. Accessing the value of an error aborts (a programming bug).
template <typename T>
class Expected {
 public:
  Expected(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Expected(Status error) : data_(std::move(error)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(data_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Expected*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Expected*>(this)->checked(); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Expected*>(this)->checked(); }

  // The error (an ok Status when this holds a value).
  Status status() const { return ok() ? Status() : std::get<Status>(data_); }
  const std::string& error_message() const {
    static const std::string kEmpty;
    return ok() ? kEmpty : std::get<Status>(data_).message();
  }

 private:
  T& checked();
  std::variant<T, Status> data_;
};

[[noreturn]] void fatal_check_failure(const char* file, int line, const char* expr, const std::string& message);

template <typename T>
T& Expected<T>::checked() {
  if (!ok()) fatal_check_failure(__FILE__, __LINE__, "Expected::value()", std::get<Status>(data_).message());
  return std::get<T>(data_);
}

}  // namespace rf

// Propagate an error Status from an expression returning Status.
#define RF_RETURN_IF_ERROR(expr)                   \
  do {                                             \
    ::rf::Status rf_status_ = (expr);              \
    if (!rf_status_.ok()) return rf_status_;       \
  } while (0)
