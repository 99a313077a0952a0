// What RegistryServer decides before it starts anything: its configuration and its refusals.
#include "images/registry_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/net.h"
#include "base/process.h"

namespace tandem::images {
namespace {

std::string RunAs() { return RunningAsRoot() ? "tandem" : ""; }

TEST(RegistryServerTest, ConfigNamesStorageAddressAndSettings) {
  RegistryServerOptions o;
  o.port = 5123;
  std::string y = RegistryServer::ConfigYaml(o, "/var/lib/tandem/reg \"x\"/data", "s3cret");
  EXPECT_NE(y.find("version: 0.1\n"), std::string::npos);
  EXPECT_NE(y.find("rootdirectory: \"/var/lib/tandem/reg \\\"x\\\"/data\"\n"), std::string::npos);
  EXPECT_NE(y.find("addr: \"127.0.0.1:5123\"\n"), std::string::npos);
  EXPECT_NE(y.find("  delete:\n    enabled: false\n"), std::string::npos);
  EXPECT_NE(y.find("  level: warn\n"), std::string::npos);
  EXPECT_NE(y.find("secret: \"s3cret\"\n"), std::string::npos);
  EXPECT_NE(y.find("storagedriver:\n    enabled: false\n"), std::string::npos);
}

TEST(RegistryServerTest, CreateRefusesBadOptions) {
  RegistryServerOptions o;
  o.state_dir = "relative/dir";
  o.port = 5000;
  EXPECT_EQ(RegistryServer::Create(o).status().code(), Code::kInvalidArgument);
  o.state_dir = "/tmp/x";
  o.port = 70000;
  EXPECT_EQ(RegistryServer::Create(o).status().code(), Code::kInvalidArgument);
}

TEST(RegistryServerTest, AMissingBinaryIsAClearError) {
  auto dir = TempDir::Create("tandem-registry-test");
  ASSERT_TRUE(dir.ok());
  RegistryServerOptions o;
  o.binary = dir->path() + "/no-such-registry";
  o.state_dir = AbsolutePath(dir->path()) + "/reg";
  o.port = PickFreePort().value();
  o.run_as = RunAs();
  auto server = RegistryServer::Create(o).value();
  Status s = server->Start(std::chrono::seconds(5));
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find(o.binary), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("docker-registry package"), std::string::npos) << s.ToString();
}

TEST(RegistryServerTest, ATakenPortIsAClearError) {
  if (access("/usr/bin/docker-registry", X_OK) != 0) GTEST_SKIP() << "no docker-registry";
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);

  auto dir = TempDir::Create("tandem-registry-test");
  ASSERT_TRUE(dir.ok());
  chmod(dir->path().c_str(), 0755);
  RegistryServerOptions o;
  o.state_dir = AbsolutePath(dir->path()) + "/reg";
  o.port = port;
  o.run_as = RunAs();
  auto server = RegistryServer::Create(o).value();
  Status s = server->Start(std::chrono::seconds(5));
  close(fd);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("already in use"), std::string::npos) << s.ToString();
  EXPECT_EQ(server->pid(), 0);
}

TEST(RegistryServerTest, RootMustNameAnUnprivilegedUser) {
  if (!RunningAsRoot()) GTEST_SKIP() << "only root is refused";
  auto dir = TempDir::Create("tandem-registry-test");
  ASSERT_TRUE(dir.ok());
  RegistryServerOptions o;
  o.state_dir = AbsolutePath(dir->path()) + "/reg";
  o.port = PickFreePort().value();
  auto server = RegistryServer::Create(o).value();
  Status s = server->Start(std::chrono::seconds(5));
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("not run as root"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace tandem::images
