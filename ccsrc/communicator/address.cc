// Address parsing, formatting and resolution (getaddrinfo, numeric hosts first).
#include "communicator/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

#include "common/error.h"

namespace fl::comm {

std::string Address::toString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Address Address::parse(const std::string& text) {
  auto colon = text.rfind(':');
  FL_ENFORCE(colon != std::string::npos && colon > 0 && colon + 1 < text.size(),
             "address must look like host:port, got '", text, "'");
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string portText = text.substr(colon + 1);
  FL_ENFORCE(portText.find_first_not_of("0123456789") == std::string::npos && portText.size() <= 5,
             "bad port in address '", text, "'");
  unsigned long port = std::stoul(portText);
  FL_ENFORCE(port <= 65535, "port out of range in address '", text, "'");
  return Address{host, static_cast<uint16_t>(port)};
}

void Address::resolve(sockaddr_storage* out, socklen_t* len) const {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    throw IoError(FL_ERROR_MSG("cannot resolve ", toString(), ": ", gai_strerror(rc)));
  }
  std::memcpy(out, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
}

Address Address::fromSockaddr(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return Address{buf, ntohs(in6->sin6_port)};
  }
  auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  inet_ntop(AF_INET, &in4->sin_addr, buf, sizeof(buf));
  return Address{buf, ntohs(in4->sin_port)};
}

}  // namespace fl::comm
