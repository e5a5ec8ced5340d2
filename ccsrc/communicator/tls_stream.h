// Mutual TLS for the inter-server link: TlsContext (one OpenSSL SSL_CTX per side, built from PEM material in
// memory and the CA/CRL files) and TlsStream, the ByteStream that encrypts a non-blocking socket. The
// handshake runs inside the first reads and writes; a peer without a certificate signed by the CA is refused
// and logged.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "communicator/stream.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace fl::comm {

// One side's certificate: the leaf followed by its chain, and the (unencrypted) private key, both PEM text.
struct TlsIdentity {
  std::string certChainPem;
  std::string keyPem;
};

// Both sides of a mutual-TLS endpoint. Empty `caFile` means TLS is off.
struct TlsOptions {
  TlsIdentity server;   // presented to inbound peers
  TlsIdentity client;   // presented to the peers we connect to
  std::string caFile;   // peers' certificates must chain to it
  std::string crlFile;  // optional: revoked peer certificates
  std::string ciphers;  // TLS 1.2 cipher list (OpenSSL names, ':'-separated); empty: OpenSSL's default
  bool enabled() const { return !caFile.empty(); }
  // Overwrites the private keys in memory (after the contexts are built).
  void wipeKeys();
};

class TlsContext {
 public:
  // Throws IoError with OpenSSL's reason when the material, CA, CRL or cipher list cannot be used.
  TlsContext(const TlsIdentity& identity, const TlsOptions& common, bool server);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A TLS stream over `sock` (server side accepts, client side connects); `peer` names it in errors and logs.
  std::unique_ptr<ByteStream> wrap(Socket sock, const std::string& peer) const;

 private:
  SSL_CTX* ctx_ = nullptr;
  const bool server_;
};

class TlsStream final : public ByteStream {
 public:
  TlsStream(Socket sock, SSL* ssl, std::string peer, bool server);
  ~TlsStream() override;

  int fd() const override { return sock_.fd(); }
  ssize_t readSome(void* buf, size_t len) override;
  ssize_t writeSome(const iovec* iov, size_t count) override;
  void shutdownBoth() override { sock_.shutdownBoth(); }
  bool waitsForWritable(bool afterWrite) const override;
  bool hasBuffered() const override;
  std::string failure(const char* op, int err) const override;

 private:
  // Maps a failed SSL_read/SSL_write to the ByteStream contract (-1 + errno, or 0 at end of stream).
  ssize_t failed(int ret, bool write);

  Socket sock_;
  SSL* ssl_;
  const std::string peer_;
  const bool server_;
  mutable std::mutex mu_;  // an SSL object is not safe for a reader and a writer at once
  bool readWantsWrite_ = false;
  bool writeWantsWrite_ = true;
  std::string error_;  // the TLS failure that ended the stream
};

}  // namespace fl::comm
