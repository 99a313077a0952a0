// Prometheus text exposition (version 0.0.4) for a small, fixed set of series.
//
// A Registry holds counters and gauges keyed by name and label set; every series also carries
// the registry's constant labels (the region). Gauges whose value is computed at scrape time
// are registered as callbacks. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tandem {

using Labels = std::vector<std::pair<std::string, std::string>>;

class MetricsRegistry {
 public:
  explicit MetricsRegistry(Labels constant) : constant_(std::move(constant)) {}

  void Describe(const std::string& name, const std::string& type, const std::string& help);
  void Add(const std::string& name, const Labels& labels, double delta);
  void Set(const std::string& name, const Labels& labels, double value);
  // `fn` is called at every Render(); its series replace any set ones of the same name.
  void OnScrape(const std::string& name,
                std::function<std::vector<std::pair<Labels, double>>()> fn);
  std::string Render();

 private:
  struct Family {
    std::string type = "gauge", help;
    std::map<Labels, double> series;
    std::function<std::vector<std::pair<Labels, double>>()> scrape;
  };
  const Labels constant_;
  std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
};

}  // namespace tandem
