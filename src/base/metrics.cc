#include "base/metrics.h"

#include <cmath>
#include <sstream>

namespace tandem {
namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string Format(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

}  // namespace

void MetricsRegistry::Describe(const std::string& name, const std::string& type,
                               const std::string& help) {
  std::lock_guard lock(mu_);
  families_[name].type = type;
  families_[name].help = help;
}

void MetricsRegistry::Add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  families_[name].series[labels] += delta;
}

void MetricsRegistry::Set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  families_[name].series[labels] = value;
}

void MetricsRegistry::OnScrape(const std::string& name,
                               std::function<std::vector<std::pair<Labels, double>>()> fn) {
  std::lock_guard lock(mu_);
  families_[name].scrape = std::move(fn);
}

std::string MetricsRegistry::Render() {
  // Callbacks may be slow (a database query): run them outside the lock.
  std::vector<std::pair<std::string, std::function<std::vector<std::pair<Labels, double>>()>>>
      scrapes;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, f] : families_) {
      if (f.scrape) scrapes.emplace_back(name, f.scrape);
    }
  }
  std::map<std::string, std::vector<std::pair<Labels, double>>> scraped;
  for (auto& [name, fn] : scrapes) scraped[name] = fn();

  std::lock_guard lock(mu_);
  std::ostringstream out;
  for (auto& [name, f] : families_) {
    if (auto it = scraped.find(name); it != scraped.end()) {
      f.series.clear();
      for (auto& [l, v] : it->second) f.series[l] = v;
    }
    if (!f.help.empty()) out << "# HELP " << name << " " << f.help << "\n";
    out << "# TYPE " << name << " " << f.type << "\n";
    for (const auto& [labels, value] : f.series) {
      out << name << "{";
      bool first = true;
      for (const Labels* set : {&constant_, &labels}) {
        for (const auto& [k, v] : *set) {
          out << (first ? "" : ",") << k << "=\"" << Escape(v) << "\"";
          first = false;
        }
      }
      out << "} " << Format(value) << "\n";
    }
  }
  return out.str();
}

}  // namespace tandem
