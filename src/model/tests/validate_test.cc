#include "model/validate.h"

#include <gtest/gtest.h>

#include <vector>

namespace tandem::model {
namespace {

TEST(ValidateTest, DeploymentNames) {
  EXPECT_TRUE(ValidateDeploymentName("etl").ok());
  EXPECT_TRUE(ValidateDeploymentName("etl-prod-2").ok());
  EXPECT_TRUE(ValidateDeploymentName(std::string(40, 'a')).ok());
  for (const std::string& bad : std::vector<std::string>{"", "Etl", "2etl", "etl_prod", "etl-", "etl prod", "ét",
                          std::string(41, 'a'), std::string("a\0b", 3)}) {
    Status s = ValidateDeploymentName(bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("deployment name"), std::string::npos);
  }
}

TEST(ValidateTest, NamesShapedLikeIdsAreRefused) {
  Status s = ValidateDeploymentName("a5d42d9d-69e4-4290-b2c1-e78a6b00c20c");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("UUID"), std::string::npos);
  EXPECT_TRUE(ValidateDeploymentName("a5d42d9d-69e4-4290-b2c1-e78a6b00c20").ok());
}

TEST(ValidateTest, LengthsCountCharactersNotBytes) {
  std::string key;
  for (int i = 0; i < 250; ++i) key += "\xc3\xa9";  // 250 characters, 500 bytes
  EXPECT_TRUE(ValidateVariableKey(key).ok());
  EXPECT_FALSE(ValidateVariableKey(key + "x").ok());
}

TEST(ValidateTest, NamespaceIsAValidDnsLabel) {
  std::string ns = DeriveNamespace(std::string(40, 'a'),
                                   DeploymentId("0f3a9c1e-0000-4000-8000-000000000000"));
  EXPECT_EQ(ns, std::string(40, 'a') + "-0f3a9c");
  EXPECT_LE(ns.size(), 63u);
}

TEST(ValidateTest, ConfigRanges) {
  DeploymentConfig c;
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.worker_slots = 0;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = {};
  c.schedule.max_active_runs = 0;
  EXPECT_NE(ValidateConfig(c).message().find("max_active_runs"), std::string::npos);
}

TEST(ValidateTest, MetricsExport) {
  MetricsExport m;
  EXPECT_TRUE(ValidateMetricsExport(m).ok());
  m.enabled = true;
  EXPECT_FALSE(ValidateMetricsExport(m).ok());  // needs an endpoint
  m.endpoint = "http://127.0.0.1:9090/api/v1/write";
  EXPECT_TRUE(ValidateMetricsExport(m).ok());
  m.format = "graphite";
  EXPECT_FALSE(ValidateMetricsExport(m).ok());
}

TEST(ValidateTest, EnvKeys) {
  EXPECT_TRUE(ValidateEnvKey("MY_VAR1").ok());
  EXPECT_FALSE(ValidateEnvKey("1VAR").ok());
  EXPECT_FALSE(ValidateEnvKey("MY-VAR").ok());
  EXPECT_FALSE(ValidateEnvKey("AIRFLOW_CONN_X").ok());
  EXPECT_FALSE(ValidateEnvKey("").ok());
}

TEST(ValidateTest, AirflowNames) {
  EXPECT_TRUE(ValidateConnId("my.conn-1_x").ok());
  EXPECT_FALSE(ValidateConnId("my conn").ok());
  EXPECT_FALSE(ValidateConnId(std::string(201, 'a')).ok());
  EXPECT_FALSE(ValidateVariableKey(std::string(251, 'k')).ok());
  EXPECT_FALSE(ValidatePoolName("").ok());
  EXPECT_FALSE(ValidatePoolSlots(-2).ok());
  EXPECT_TRUE(ValidatePoolSlots(-1).ok());
}

TEST(ValidateTest, SizeLimit) {
  EXPECT_TRUE(ValidateSize("value", 10, 10).ok());
  Status s = ValidateSize("value", 11, 10);
  EXPECT_EQ(s.code(), Code::kTooLarge);
  EXPECT_NE(s.message().find("11 bytes"), std::string::npos);
}

TEST(ValidateTest, SensitiveNames) {
  EXPECT_TRUE(IsSensitiveName("DB_PASSWORD"));
  EXPECT_TRUE(IsSensitiveName("slack_api_key"));
  EXPECT_TRUE(IsSensitiveName("gcp_service_account"));
  EXPECT_FALSE(IsSensitiveName("region"));
}

}  // namespace
}  // namespace tandem::model
