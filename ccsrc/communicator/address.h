// "host:port" endpoint addresses and their resolution to sockaddr.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace fl::comm {

struct Address {
  std::string host;
  uint16_t port = 0;

  // "host:port"; IPv6 hosts are bracketed ("[::1]:80").
  std::string toString() const;
  // Parses "host:port" or "[v6host]:port"; throws EnforceError on malformed input.
  static Address parse(const std::string& text);
  // Resolves to a socket address (numeric hosts without DNS); throws IoError when unresolvable.
  void resolve(sockaddr_storage* out, socklen_t* len) const;
  // The address of a connected or bound socket (getsockname / getpeername).
  static Address fromSockaddr(const sockaddr* sa);
};

}  // namespace fl::comm
