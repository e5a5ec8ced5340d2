// TlsContext and TlsStream over OpenSSL: TLS 1.2+, the configured cipher list, peer certificates required and
// verified against the CA (and CRL); non-blocking SSL_read/SSL_write mapped to the ByteStream contract.
#include "communicator/tls_stream.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace fl::comm {
namespace {
// Small iovecs (frame headers, short frames) are gathered into one record instead of one record each.
constexpr size_t kGatherBytes = 16u << 10;
// One SSL_write covers at most this much of a large frame (it writes record after record until EAGAIN).
constexpr size_t kMaxWriteBytes = 4u << 20;

// Pops OpenSSL's error queue into one text ("" when it is empty).
std::string sslErrors() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

[[noreturn]] void fail(const std::string& what) {
  std::string why = sslErrors();
  throw IoError(FL_ERROR_MSG("TLS: ", what, why.empty() ? "" : ": ", why));
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr memBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

void useIdentity(SSL_CTX* ctx, const TlsIdentity& id, const char* side) {
  BioPtr certs = memBio(id.certChainPem);
  X509* leaf = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) fail(std::string("no certificate in the ") + side + " identity");
  int ok = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (ok != 1) fail(std::string("cannot use the ") + side + " certificate");
  while (X509* extra = PEM_read_bio_X509(certs.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      fail(std::string("cannot use the ") + side + " certificate chain");
    }
  }
  ERR_clear_error();  // the end of the PEM text is reported as an error
  BioPtr keyBio = memBio(id.keyPem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) fail(std::string("no private key in the ") + side + " identity");
  ok = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    fail(std::string("the ") + side + " private key does not match its certificate");
  }
}

void loadCrl(SSL_CTX* ctx, const std::string& path) {
  BIO* raw = BIO_new_file(path.c_str(), "r");
  if (raw == nullptr) fail("cannot read the CRL " + path);
  BioPtr bio(raw);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int loaded = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    int ok = X509_STORE_add_crl(store, crl);
    X509_CRL_free(crl);
    if (ok != 1) fail("cannot use the CRL " + path);
    ++loaded;
  }
  ERR_clear_error();
  if (loaded == 0) fail("no CRL in " + path);
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
}

// The socket BIO of OpenSSL writes with write(2), which raises SIGPIPE on a closed peer; this one sends with
// MSG_NOSIGNAL (as PlainStream does) and otherwise behaves like it (retry flags, EOF flag).
int fdOf(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

int bioWrite(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n = ::send(fdOf(b), data, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

int bioRead(BIO* b, char* data, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n = ::recv(fdOf(b), data, static_cast<size_t>(len), 0);
  if (n == 0) BIO_set_flags(b, BIO_FLAGS_IN_EOF);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}

long bioCtrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
    default:
      return 0;
  }
}

int bioCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* noSignalSocket() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "socket (MSG_NOSIGNAL)");
    BIO_meth_set_write(m, bioWrite);
    BIO_meth_set_read(m, bioRead);
    BIO_meth_set_ctrl(m, bioCtrl);
    BIO_meth_set_create(m, bioCreate);
    return m;
  }();
  return method;
}

void cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}
}  // namespace

void TlsOptions::wipeKeys() {
  cleanse(server.keyPem);
  cleanse(client.keyPem);
}

TlsContext::TlsContext(const TlsIdentity& identity, const TlsOptions& common, bool server) : server_(server) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx_ == nullptr) fail("SSL_CTX_new failed");
  try {
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    // No tickets or renegotiation: each link is one long-lived connection; EOF without close_notify is EOF.
    SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_num_tickets(ctx_, 0);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!common.ciphers.empty() && SSL_CTX_set_cipher_list(ctx_, common.ciphers.c_str()) != 1) {
      fail("none of the cipher suites '" + common.ciphers + "' is available");
    }
    useIdentity(ctx_, identity, server ? "server" : "client");
    if (SSL_CTX_load_verify_locations(ctx_, common.caFile.c_str(), nullptr) != 1) {
      fail("cannot load the CA certificate " + common.caFile);
    }
    if (!common.crlFile.empty()) loadCrl(ctx_, common.crlFile);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } catch (...) {
    SSL_CTX_free(ctx_);
    throw;
  }
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<ByteStream> TlsContext::wrap(Socket sock, const std::string& peer) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) fail("SSL_new failed");
  BIO* bio = BIO_new(noSignalSocket());
  if (bio == nullptr) {
    SSL_free(ssl);
    fail("BIO_new failed");
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(sock.fd())));
  SSL_set_bio(ssl, bio, bio);  // the SSL owns the BIO; the descriptor stays the Socket's
  if (server_) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
  }
  return std::make_unique<TlsStream>(std::move(sock), ssl, peer, server_);
}

TlsStream::TlsStream(Socket sock, SSL* ssl, std::string peer, bool server)
    : sock_(std::move(sock)), ssl_(ssl), peer_(std::move(peer)), server_(server) {}

TlsStream::~TlsStream() { SSL_free(ssl_); }

ssize_t TlsStream::readSome(void* buf, size_t len) {
  std::lock_guard<std::mutex> lock(mu_);
  ERR_clear_error();
  int n = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(len, INT_MAX)));
  if (n > 0) return n;
  return failed(n, false);
}

ssize_t TlsStream::writeSome(const iovec* iov, size_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  if (count == 0) return 0;
  const void* data = iov[0].iov_base;
  size_t len = std::min(iov[0].iov_len, kMaxWriteBytes);
  char gathered[kGatherBytes];
  if (iov[0].iov_len < kGatherBytes && count > 1) {
    // Deterministic for a retry: the same queue head gathers the same leading bytes (or more).
    len = 0;
    for (size_t i = 0; i < count && len < kGatherBytes; ++i) {
      size_t take = std::min(iov[i].iov_len, kGatherBytes - len);
      std::memcpy(gathered + len, iov[i].iov_base, take);
      len += take;
    }
    data = gathered;
  }
  ERR_clear_error();
  int n = SSL_write(ssl_, data, static_cast<int>(len));
  if (n > 0) return n;
  return failed(n, true);
}

ssize_t TlsStream::failed(int ret, bool write) {
  int sysErr = errno;
  int code = SSL_get_error(ssl_, ret);
  switch (code) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      (write ? writeWantsWrite_ : readWantsWrite_) = code == SSL_ERROR_WANT_WRITE;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
    case SSL_ERROR_SYSCALL:
      if (code == SSL_ERROR_ZERO_RETURN || sysErr == 0) {  // the peer ended the stream
        if (!write) return 0;
        sysErr = EPIPE;  // a write never reports 0 bytes: the connection must not spin on it
      }
      error_ = errnoText(write ? "send" : "recv", sysErr);
      errno = sysErr;
      return -1;
    default:
      break;
  }
  bool handshake = SSL_is_init_finished(ssl_) == 0;
  std::string why = sslErrors();
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK)
    why += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
  error_ =
      std::string(handshake ? "TLS handshake failed: " : "TLS error: ") + (why.empty() ? "unknown" : why);
  if (handshake) {
    std::fprintf(stderr, "[%s:%d] WARN %s peer %s refused: %s\n", __FILE__, __LINE__,
                 server_ ? "inbound" : "outbound", peer_.c_str(), error_.c_str());
  }
  errno = EPROTO;
  return -1;
}

bool TlsStream::waitsForWritable(bool afterWrite) const {
  std::lock_guard<std::mutex> lock(mu_);
  return afterWrite ? writeWantsWrite_ : readWantsWrite_;
}

bool TlsStream::hasBuffered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return SSL_has_pending(ssl_) == 1;
}

std::string TlsStream::failure(const char* op, int err) const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_.empty() ? errnoText(op, err) : error_;
}

}  // namespace fl::comm
