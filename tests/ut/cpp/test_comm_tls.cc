// Mutual TLS between Communicators with certificates made at test time: handshake and requests both ways,
// large frames, an all-reduce, and refusal of a peer whose certificate comes from another CA, of a peer
// without a certificate, of a peer revoked by the CRL, of plain TCP, and of unusable material.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "communicator/allreduce.h"
#include "communicator/communicator.h"
#include "communicator/socket.h"
#include "responder.h"

namespace {

using namespace fl::comm;
using fl::comm::test_util::Responder;

struct Key {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  ~Key() { EVP_PKEY_free(k); }
};

std::string pem(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

std::string pem(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

void addExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `cn` with `key`, signed by (issuer, issuerKey), or self-signed when issuer is null.
X509* makeCert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuerKey, long serial) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 30);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert, key);
  X509* signer = issuer ? issuer : cert;
  addExt(cert, signer, NID_basic_constraints, issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
  addExt(cert, signer, NID_subject_key_identifier, "hash");
  if (issuer) addExt(cert, signer, NID_authority_key_identifier, "keyid");
  X509_sign(cert, issuerKey ? issuerKey : key, EVP_sha256());
  return cert;
}

std::string writeTemp(const std::string& text) {
  char path[] = "/tmp/fl_tls_testXXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  return path;
}

// A CA that issues identities (leaf + key PEM) and writes its certificate and CRLs to files.
class Ca {
 public:
  explicit Ca(const char* cn) : cert_(makeCert(cn, key_.k, nullptr, nullptr, 1)) {
    file_ = writeTemp(pem(cert_));
  }
  ~Ca() {
    X509_free(cert_);
    for (auto& f : files_) ::unlink(f.c_str());
    ::unlink(file_.c_str());
  }
  TlsIdentity issue(const char* cn, long serial) {
    Key leafKey;
    X509* leaf = makeCert(cn, leafKey.k, cert_, key_.k, serial);
    TlsIdentity id{pem(leaf), pem(leafKey.k)};
    X509_free(leaf);
    return id;
  }
  // A CRL revoking `serial`.
  std::string crl(long serial) {
    X509_CRL* crl = X509_CRL_new();
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(cert_));
    ASN1_TIME* now = X509_gmtime_adj(nullptr, -60);
    ASN1_TIME* next = X509_gmtime_adj(nullptr, 3600L * 24);
    X509_CRL_set1_lastUpdate(crl, now);
    X509_CRL_set1_nextUpdate(crl, next);
    X509_REVOKED* rev = X509_REVOKED_new();
    ASN1_INTEGER* s = ASN1_INTEGER_new();
    ASN1_INTEGER_set(s, serial);
    X509_REVOKED_set_serialNumber(rev, s);
    X509_REVOKED_set_revocationDate(rev, now);
    X509_CRL_add0_revoked(crl, rev);
    X509_CRL_sign(crl, key_.k, EVP_sha256());
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_CRL(b, crl);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    std::string path = writeTemp(std::string(data, static_cast<size_t>(n)));
    files_.push_back(path);
    BIO_free(b);
    ASN1_INTEGER_free(s);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    X509_CRL_free(crl);
    return path;
  }
  const std::string& file() const { return file_; }

 private:
  Key key_;
  X509* cert_;
  std::string file_;
  std::vector<std::string> files_;
};

CommunicatorOptions tlsOptions(Ca& ca, long serial, const std::string& crl = "") {
  CommunicatorOptions o;
  o.tls.server = ca.issue("127.0.0.1", serial);
  o.tls.client = ca.issue("client", serial + 1);
  o.tls.caFile = ca.file();
  o.tls.crlFile = crl;
  o.tls.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";
  return o;
}

TEST(CommTls, RequestsBothWaysAndLargeFrames) {
  Ca ca("cluster-ca");
  Communicator a(tlsOptions(ca, 10)), b(tlsOptions(ca, 20));
  ASSERT_TRUE(a.tls());
  a.start();
  b.start();
  Responder ea(a), eb(b);
  EXPECT_EQ(b.request(a.address(), 1, "hello", 10).view(), "re:1:hello");
  EXPECT_EQ(a.request(b.address(), 1, "back", 10).view(), "re:1:back");
  std::string big(48u << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>(i * 31);
  Bytes reply = b.request(a.address(), 2, big, 60);
  ASSERT_EQ(reply.size, big.size() + 5);
  EXPECT_EQ(std::string(reply.view().substr(5)), big);
  // many small frames interleaved from several threads on one connection (records gathered per write)
  std::atomic<int> ok{0};
  auto burst = [&](int t) {
    for (int i = 0; i < 200; ++i) {
      std::string msg = std::to_string(t) + ":" + std::to_string(i);
      ok += a.request(b.address(), 3, msg, 20).view() == "re:3:" + msg ? 1 : 0;
    }
  };
  std::thread t1(burst, 1), t2(burst, 2), t3(burst, 3);
  burst(0);
  t1.join();
  t2.join();
  t3.join();
  EXPECT_EQ(ok.load(), 800);
}

TEST(CommTls, AllreduceOverTls) {
  Ca ca("cluster-ca");
  std::vector<std::unique_ptr<Communicator>> comms;
  std::vector<std::string> group;
  for (long r = 0; r < 3; ++r) {
    comms.push_back(std::make_unique<Communicator>(tlsOptions(ca, 100 + 10 * r)));
    comms.back()->start();
    group.push_back(comms.back()->address());
  }
  const size_t n = 1000003;
  std::vector<std::vector<float>> data(3, std::vector<float>(n));
  for (size_t r = 0; r < 3; ++r) {
    for (size_t i = 0; i < n; ++i) data[r][i] = static_cast<float>(i % 1000 + r);
  }
  std::vector<std::thread> ranks;
  std::atomic<int> failures{0};
  for (size_t r = 0; r < 3; ++r) {
    ranks.emplace_back([&, r] {
      AllreduceOptions o;
      o.group = group;
      o.rank = r;
      o.data = data[r].data();
      o.count = n;
      o.tag = 7;
      o.timeoutSec = 60;
      try {
        allreduce(*comms[r], o);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %zu: %s\n", r, e.what());
        ++failures;
      }
    });
  }
  for (auto& t : ranks) t.join();
  ASSERT_EQ(failures.load(), 0);
  for (size_t r = 0; r < 3; ++r) {
    for (size_t i = 0; i < n; i += 997) ASSERT_EQ(data[r][i], static_cast<float>((i % 1000) * 3 + 3));
  }
}

// The error of a request from `from` to `to` ("" when it was answered).
std::string refusal(Communicator& from, const Communicator& to) {
  try {
    from.request(to.address(), 1, "hello?", 10);
  } catch (const fl::IoError& err) {
    return err.what();
  }
  return "";
}

// Options whose CA is the cluster's but whose certificates come from `issuer`.
CommunicatorOptions foreign(Ca& issuer, const Ca& cluster) {
  CommunicatorOptions o = tlsOptions(issuer, 30);
  o.tls.caFile = cluster.file();
  return o;
}

TEST(CommTls, PeerFromAnotherCaIsRefused) {
  Ca ca("cluster-ca"), rogue("rogue-ca");
  Communicator server(tlsOptions(ca, 10));
  Communicator intruder(foreign(rogue, ca));  // trusts the cluster; the cluster does not trust it
  server.start();
  intruder.start();
  Responder e(server);
  std::string why = refusal(intruder, server);
  EXPECT_FALSE(why.empty()) << "a peer with a certificate from another CA was served";
  EXPECT_EQ(why.find("timed out"), std::string::npos) << why;  // refused at once, not ignored
  EXPECT_EQ(server.pollRequests(8).size(), 0u);
}

TEST(CommTls, ServerFromAnotherCaIsRefusedByTheClient) {
  Ca ca("cluster-ca"), rogue("rogue-ca");
  Communicator impostor(foreign(rogue, ca)), client(tlsOptions(ca, 10));
  impostor.start();
  client.start();
  Responder e(impostor);
  EXPECT_NE(refusal(client, impostor).find("TLS handshake failed"), std::string::npos);
}

// A TLS client that trusts the cluster CA but presents no certificate gets no byte of application data.
TEST(CommTls, PeerWithoutCertificateIsRefused) {
  Ca ca("cluster-ca");
  Communicator server(tlsOptions(ca, 10));
  server.start();
  Responder e(server);
  Address addr = Address::parse(server.address());
  Socket sock = Socket::connectTo(addr, deadlineAfter(5));
  int flags = ::fcntl(sock.fd(), F_GETFL);
  ::fcntl(sock.fd(), F_SETFL, flags & ~O_NONBLOCK);
  timeval tv{5, 0};
  ::setsockopt(sock.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx, ca.file().c_str(), nullptr), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, sock.fd());
  int connected = SSL_connect(ssl);  // TLS 1.3: the client may finish before the server checks it
  char buf[64];
  int got = connected == 1 ? SSL_read(ssl, buf, sizeof(buf)) : -1;
  EXPECT_LE(got, 0);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  EXPECT_EQ(server.pollRequests(8).size(), 0u);
}

TEST(CommTls, RevokedPeerIsRefused) {
  Ca ca("cluster-ca");
  Communicator server(tlsOptions(ca, 10, ca.crl(41)));
  Communicator revoked(tlsOptions(ca, 40));  // its client certificate is serial 41
  server.start();
  revoked.start();
  Responder e(server);
  EXPECT_THROW(revoked.request(server.address(), 1, "hi", 10), fl::IoError);
  Communicator fine(tlsOptions(ca, 50));
  fine.start();
  EXPECT_EQ(fine.request(server.address(), 1, "hi", 10).view(), "re:1:hi");
}

TEST(CommTls, PlainPeerIsRefusedBothWays) {
  Ca ca("cluster-ca");
  Communicator secure(tlsOptions(ca, 10)), plain;
  secure.start();
  plain.start();
  Responder es(secure), ep(plain);
  EXPECT_THROW(plain.request(secure.address(), 1, "hi", 5), fl::IoError);
  EXPECT_THROW(secure.request(plain.address(), 1, "hi", 5), fl::IoError);
}

TEST(CommTls, UnusableMaterialFailsAtConstruction) {
  Ca ca("cluster-ca"), other("other-ca");
  CommunicatorOptions o = tlsOptions(ca, 10);
  o.tls.server.keyPem = other.issue("x", 2).keyPem;  // key of another certificate
  EXPECT_THROW(Communicator{o}, fl::IoError);
  o = tlsOptions(ca, 10);
  o.tls.caFile = "/nonexistent/ca.pem";
  EXPECT_THROW(Communicator{o}, fl::IoError);
  o = tlsOptions(ca, 10);
  o.tls.ciphers = "NOT-A-CIPHER";
  EXPECT_THROW(Communicator{o}, fl::IoError);
}

}  // namespace
