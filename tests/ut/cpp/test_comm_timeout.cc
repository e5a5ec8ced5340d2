// Failure timing: refused connects, silent peers and a SIGSTOPped process all fail within 2x the timeout.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "common/error.h"
#include "communicator/communicator.h"
#include "communicator/socket.h"

namespace {

using namespace fl::comm;
using namespace std::chrono_literals;

constexpr double kTimeout = 0.4;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string unusedAddress() {
  Socket probe = Socket::listenOn(Address{"127.0.0.1", 0}, 1);
  return probe.localAddress().toString();  // closed on return: nothing listens there
}

TEST(CommTimeout, ConnectRefusedFailsFastNamingPeer) {
  Communicator c;
  c.start();
  std::string dead = unusedAddress();
  auto start = Clock::now();
  try {
    c.request(dead, 1, "x", kTimeout);
    FAIL() << "expected IoError";
  } catch (const fl::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dead), std::string::npos) << e.what();
  }
  EXPECT_LT(secondsSince(start), 2 * kTimeout);
}

TEST(CommTimeout, SilentPeerTimesOut) {
  Communicator silent, c;  // `silent` accepts and queues requests but nobody answers them
  silent.start();
  c.start();
  auto start = Clock::now();
  try {
    c.request(silent.address(), 1, "x", kTimeout);
    FAIL() << "expected TimeoutError";
  } catch (const fl::TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find(silent.address()), std::string::npos) << e.what();
  }
  double took = secondsSince(start);
  EXPECT_GE(took, kTimeout * 0.95);
  EXPECT_LT(took, 2 * kTimeout);
}

// A child that listens (the kernel completes handshakes) and then stops itself.
pid_t spawnStoppedListener(uint16_t* port) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(s, 16) != 0) ::_exit(1);
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    uint16_t p = ntohs(a.sin_port);
    if (::write(fds[1], &p, sizeof(p)) != sizeof(p)) ::_exit(1);
    ::raise(SIGSTOP);
    ::_exit(0);
  }
  ::close(fds[1]);
  ssize_t n = ::read(fds[0], port, sizeof(*port));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, WUNTRACED);  // returns once the child has stopped
  return n == sizeof(*port) ? pid : -1;
}

TEST(CommTimeout, StoppedProcessPeerTimesOut) {
  uint16_t port = 0;
  pid_t child = spawnStoppedListener(&port);
  ASSERT_GT(child, 0);
  std::string peer = "127.0.0.1:" + std::to_string(port);
  double took = 0;
  bool timedOut = false;
  {
    Communicator c;
    c.start();
    auto start = Clock::now();
    try {
      c.request(peer, 1, "x", kTimeout);
    } catch (const fl::TimeoutError& e) {
      timedOut = std::string(e.what()).find(peer) != std::string::npos;
    } catch (const std::exception&) {
    }
    took = secondsSince(start);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(timedOut);
  EXPECT_LT(took, 2 * kTimeout);
}

TEST(CommTimeout, PeerStopMidRequestFailsAtOnce) {
  Communicator server, c;
  server.start();
  c.start();
  std::thread killer([&] {
    std::this_thread::sleep_for(100ms);
    server.stop();
  });
  auto start = Clock::now();
  EXPECT_THROW(c.request(server.address(), 1, "x", 10.0), fl::IoError);
  EXPECT_LT(secondsSince(start), 2.0);
  killer.join();
}

}  // namespace
