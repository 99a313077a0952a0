#include "base/metrics.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(MetricsTest, RendersPrometheusTextWithConstantLabels) {
  MetricsRegistry m(Labels{{"region", "region-a"}});
  m.Describe("tandem_http_requests_total", "counter", "HTTP requests served.");
  m.Add("tandem_http_requests_total", {{"code", "200"}}, 1);
  m.Add("tandem_http_requests_total", {{"code", "200"}}, 2);
  m.OnScrape("tandem_deployments", [] {
    return std::vector<std::pair<Labels, double>>{{{}, 4}};
  });
  std::string text = m.Render();
  EXPECT_NE(text.find("# TYPE tandem_http_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("tandem_http_requests_total{region=\"region-a\",code=\"200\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tandem_deployments{region=\"region-a\"} 4\n"), std::string::npos) << text;
}

TEST(MetricsTest, EscapesLabelValues) {
  MetricsRegistry m(Labels{{"region", "a\"b"}});
  m.Set("g", {}, 1);
  EXPECT_NE(m.Render().find("g{region=\"a\\\"b\"} 1"), std::string::npos);
}

}  // namespace
}  // namespace tandem
