// Responder: answers a Communicator's requests on its own thread until destroyed (shared by the comm gtests).
#pragma once

#include <poll.h>

#include <atomic>
#include <string>
#include <thread>

#include "communicator/communicator.h"

namespace fl::comm::test_util {

// Answers requests on `server` until `stop` (echo with a prefix; msg_type 99 gets an error reply).
class Responder {
 public:
  explicit Responder(Communicator& server) : server_(server), thread_([this] { run(); }) {}
  ~Responder() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    while (!stop_) {
      pollfd pfd{server_.fileno(), POLLIN, 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      for (auto& r : server_.pollRequests(64)) {
        if (r.msgType == 99) {
          server_.reply(r.id, "", "boom: " + std::string(r.payload.view()));
        } else {
          server_.reply(r.id, "re:" + std::to_string(r.msgType) + ":" + std::string(r.payload.view()), "");
        }
      }
    }
  }
  Communicator& server_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace fl::comm::test_util
