// Error policy of the C++ core: recoverable I/O failures throw IoError/TimeoutError
// (naming the peer), broken invariants throw EnforceError via FL_ENFORCE.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace fl {

class Exception : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A peer or socket failed; the connection is in an unknown state and must be recreated.
class IoError : public Exception {
 public:
  using Exception::Exception;
};

// A wait ran past its deadline.
class TimeoutError : public IoError {
 public:
  using IoError::IoError;
};

// An invariant of the caller's contract was broken (bad argument, bad state).
class EnforceError : public Exception {
 public:
  using Exception::Exception;
};

namespace detail {
template <typename... Args>
std::string concat(const char* file, int line, const Args&... args) {
  std::ostringstream os;
  os << "[" << file << ":" << line << "] ";
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace fl

#define FL_ERROR_MSG(...) ::fl::detail::concat(__FILE__, __LINE__, __VA_ARGS__)

#define FL_ENFORCE(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      throw ::fl::EnforceError(FL_ERROR_MSG("Enforce failed: " #cond " ", ##__VA_ARGS__)); \
    }                                                                                      \
  } while (0)
