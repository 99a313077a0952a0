// What the DNS client decides before it sends anything: servers, keys and updates it refuses.
#include "dns/dns.h"

#include <gtest/gtest.h>

#include "base/net.h"

namespace tandem::dns {
namespace {

using namespace std::chrono_literals;

TEST(DnsTest, ParsesServers) {
  auto s = ParseServer("127.0.0.53:5353");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->address, "127.0.0.53");
  EXPECT_EQ(s->port, 5353);
  EXPECT_EQ(s->ToString(), "127.0.0.53:5353");
  EXPECT_EQ(ParseServer("10.1.2.3")->port, 53);
  for (const char* bad : {"", "dns.example:53", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:",
                          "127.0.0.1:5x", "::1", "1.2.3:53"}) {
    auto r = ParseServer(bad);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseServer("host:53").status().message().find("IPv4"), std::string::npos);
}

TEST(DnsTest, ChecksTsigKeys) {
  TsigKey k{"tandem-update", "hmac-sha256", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="};
  EXPECT_TRUE(CheckTsigKey(k).ok()) << CheckTsigKey(k).ToString();
  TsigKey no_name = k;
  no_name.name = "";
  EXPECT_NE(CheckTsigKey(no_name).message().find("no name"), std::string::npos);
  TsigKey md5 = k;
  md5.algorithm = "hmac-md5";
  EXPECT_NE(CheckTsigKey(md5).message().find("hmac-md5"), std::string::npos);
  TsigKey short_secret = k;
  short_secret.secret = "c2hvcnQ=";
  EXPECT_NE(CheckTsigKey(short_secret).message().find("at least 16 bytes"), std::string::npos);
  TsigKey not_base64 = k;
  not_base64.secret = "not base64!";
  EXPECT_EQ(CheckTsigKey(not_base64).code(), Code::kInvalidArgument);
}

TEST(DnsTest, RefusesBadUpdatesBeforeSendingThem) {
  // Nothing listens on this port: every refusal below comes before anything is sent.
  Server nowhere{"127.0.0.1", PickFreePort().value()};
  TsigKey key{"tandem-update", "hmac-sha256", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="};
  Update u;
  u.zone = "tandem.test";
  u.set["a.tandem.test"] = "not-an-address";
  Status s = SendUpdate(nowhere, key, u, 1s);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("not-an-address"), std::string::npos);
  u.set.clear();
  u.set["bad name!.tandem.test"] = "127.0.0.2";
  EXPECT_EQ(SendUpdate(nowhere, TsigKey{}, u, 1s).code(), Code::kInvalidArgument);
  // An empty update sends nothing at all.
  u.set.clear();
  EXPECT_TRUE(SendUpdate(nowhere, key, u, 1s).ok());
}

TEST(DnsTest, ParsesHttpUrlsAndKnowsAddressesFromNames) {
  auto hp = ParseHttpUrl("http://etl-3f6c2a-exec.tandem.test:8080/deployments/etl");
  ASSERT_TRUE(hp.ok()) << hp.status().ToString();
  EXPECT_EQ(hp->host, "etl-3f6c2a-exec.tandem.test");
  EXPECT_EQ(hp->port, 8080);
  EXPECT_EQ(ParseHttpUrl("http://127.0.0.11")->port, 80);
  EXPECT_FALSE(ParseHttpUrl("http://127.0.0.11")->https);
  auto secure = ParseHttpUrl("https://a.test");
  ASSERT_TRUE(secure.ok());
  EXPECT_TRUE(secure->https);
  EXPECT_EQ(secure->port, 443);
  for (const char* bad : {"ftp://a.test", "a.test:80", "http://:80", "http://a.test:0",
                          "http://a.test:x/"}) {
    EXPECT_EQ(ParseHttpUrl(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(IsIpv4Address("127.0.0.11"));
  EXPECT_FALSE(IsIpv4Address("api.tandem.test"));
  // Without a resolver, or for an address, nothing is looked up.
  EXPECT_EQ(ConnectAddress(nullptr, "api.tandem.test").value(), "api.tandem.test");
  Resolver nowhere(Server{"127.0.0.1", PickFreePort().value()}, 200ms);
  EXPECT_EQ(ConnectAddress(&nowhere, "127.0.0.12").value(), "127.0.0.12");
  EXPECT_EQ(ConnectAddress(&nowhere, "api.tandem.test").status().code(), Code::kUnavailable);
}

TEST(DnsTest, ALookUpOfAServerThatIsNotThereIsUnavailable) {
  Server nowhere{"127.0.0.1", PickFreePort().value()};
  auto r = LookUp(nowhere, "a.tandem.test", 300ms);
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find(nowhere.ToString()), std::string::npos);
}

}  // namespace
}  // namespace tandem::dns
