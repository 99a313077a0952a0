#include "tls/certificates.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "base/fs.h"
#include "tls/http_client.h"

namespace tandem::tls {
namespace {

using std::chrono::hours;

class CertificatesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create("tls-test");
    ASSERT_TRUE(d.ok()) << d.status().message();
    dir_.emplace(std::move(d).value());
    auto ca = CreateAuthority("test CA", hours(24));
    ASSERT_TRUE(ca.ok()) << ca.status().message();
    ca_ = *ca;
  }

  // Writes `pem` as <name>.crt / <name>.key (0600) and returns the files.
  ServerFiles Write(const std::string& name, const Pem& pem) {
    ServerFiles f{dir_->path() + "/" + name + ".crt", dir_->path() + "/" + name + ".key"};
    EXPECT_TRUE(WriteFileAtomic(f.cert_file, pem.certificate).ok());
    EXPECT_TRUE(WriteFileAtomic(f.key_file, pem.private_key, 0600).ok());
    return f;
  }

  std::string CaFile(const std::string& name, const Pem& ca) {
    std::string path = dir_->path() + "/" + name;
    EXPECT_TRUE(WriteFileAtomic(path, ca.certificate).ok());
    return path;
  }

  Pem Issue(const ServerNames& names) {
    auto p = IssueServerCertificate(ca_, names, hours(24));
    EXPECT_TRUE(p.ok()) << p.status().message();
    return p.ok() ? *p : Pem{};
  }

  std::optional<TempDir> dir_;
  Pem ca_;
};

TEST_F(CertificatesTest, AServerCertificateCarriesItsNamesAndChainsToItsAuthority) {
  Pem server = Issue({"region-a", {"region-a.tandem.test", "*.tandem.test"}, {"127.0.0.11"}});
  auto names = NamesOf(server.certificate);
  ASSERT_TRUE(names.ok()) << names.status().message();
  EXPECT_EQ(*names, (std::vector<std::string>{"DNS:region-a.tandem.test", "DNS:*.tandem.test",
                                              "IP:127.0.0.11"}));
  ServerFiles f = Write("a", server);
  EXPECT_TRUE(CheckServerFiles(f, {"127.0.0.11", "etl.tandem.test", "region-a.tandem.test"},
                               CaFile("ca.crt", ca_))
                  .ok());
}

TEST_F(CertificatesTest, CheckServerFilesSaysWhatIsWrong) {
  ServerFiles f = Write("a", Issue({"a", {"a.tandem.test"}, {"127.0.0.11"}}));
  Status s = CheckServerFiles(f, {"127.0.0.12"});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(
      s.message().find("does not cover 127.0.0.12 (its names: DNS:a.tandem.test, IP:127.0.0.11)"),
      std::string::npos)
      << s.message();
  EXPECT_NE(CheckServerFiles(f, {"b.tandem.test"}).message().find("does not cover b.tandem.test"),
            std::string::npos);

  // Another CA's certificate.
  auto other = CreateAuthority("other CA", hours(24));
  ASSERT_TRUE(other.ok());
  s = CheckServerFiles(f, {}, CaFile("other.crt", *other));
  EXPECT_NE(s.message().find("is not signed by the CA in"), std::string::npos) << s.message();

  // A key that is not the certificate's.
  ServerFiles mixed{f.cert_file, Write("b", Issue({"b", {"b.tandem.test"}, {}})).key_file};
  s = CheckServerFiles(mixed, {});
  EXPECT_NE(s.message().find("does not hold the key of"), std::string::npos) << s.message();

  // A key file others can read.
  ASSERT_EQ(chmod(f.key_file.c_str(), 0644), 0);
  s = CheckServerFiles(f, {});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("chmod"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("PRIVATE KEY"), std::string::npos) << "the key's text is never shown";

  // Not PEM at all.
  ASSERT_TRUE(WriteFileAtomic(f.cert_file, "hello").ok());
  ASSERT_EQ(chmod(f.key_file.c_str(), 0600), 0);
  EXPECT_NE(CheckServerFiles(f, {}).message().find("holds no PEM certificate"), std::string::npos);
}

TEST_F(CertificatesTest, BadNamesAndAMismatchedAuthorityAreRefused) {
  EXPECT_EQ(IssueServerCertificate(ca_, {"x", {"bad name"}, {}}, hours(1)).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(IssueServerCertificate(ca_, {"x", {}, {"300.1.1.1"}}, hours(1)).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(IssueServerCertificate(ca_, {"x", {}, {}}, hours(1)).status().code(),
            Code::kInvalidArgument);
  auto other = CreateAuthority("other", hours(1));
  ASSERT_TRUE(other.ok());
  Pem mixed{ca_.certificate, other->private_key};
  EXPECT_EQ(IssueServerCertificate(mixed, {"x", {"x.test"}, {}}, hours(1)).status().code(),
            Code::kInvalidArgument);
}

// A real TLS server on loopback: a client that trusts the CA gets through; one that trusts
// another CA, or dials a name the certificate does not carry, is refused with a reason.
TEST_F(CertificatesTest, ClientsVerifyTheServerAgainstTheirTrustAndTheNameDialled) {
  ServerFiles f = Write("srv", Issue({"srv", {"localhost"}, {"127.0.0.1"}}));
  httplib::SSLServer server(f.cert_file.c_str(), f.key_file.c_str());
  ASSERT_TRUE(server.is_valid());
  server.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("hi", "text/plain");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread t([&] { server.listen_after_bind(); });

  const Trust ours{CaFile("ca.crt", ca_)};
  auto ok = NewHttpClient(true, "127.0.0.1", port, ours)->Get("/hello");
  ASSERT_TRUE(ok) << httplib::to_string(ok.error());
  EXPECT_EQ(ok->body, "hi");

  auto other = CreateAuthority("other", hours(1));
  ASSERT_TRUE(other.ok());
  const Trust theirs{CaFile("other.crt", *other)};
  auto c = NewHttpClient(true, "127.0.0.1", port, theirs);
  auto refused = c->Get("/hello");
  ASSERT_FALSE(refused);
  EXPECT_NE(DescribeError(*c, refused.error(), theirs).find("not signed by the CA in"),
            std::string::npos)
      << DescribeError(*c, refused.error(), theirs);

  // The certificate covers 127.0.0.1 and localhost, not this name.
  auto named = NewHttpClient(true, "other.test", port, ours);
  named->set_hostname_addr_map({{"other.test", "127.0.0.1"}});
  auto wrong_name = named->Get("/hello");
  ASSERT_FALSE(wrong_name);
  EXPECT_NE(DescribeError(*named, wrong_name.error(), ours).find("do not cover"), std::string::npos)
      << DescribeError(*named, wrong_name.error(), ours);

  // Plain HTTP to a TLS port gets no answer.
  EXPECT_FALSE(NewHttpClient(false, "127.0.0.1", port, ours)->Get("/hello"));

  server.stop();
  t.join();
}

}  // namespace
}  // namespace tandem::tls
