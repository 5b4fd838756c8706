#include "golden/golden_config.h"

#include <filesystem>

#include "common/config.h"
#include "common/error.h"
#include "model/runtime_config.h"

namespace foresight {

void check_schedule(const Config& c, const EvictionSchedule& s) {
  if (s.interval >= s.budget) {
    c.fail("interval", "is " + std::to_string(s.interval) + ", expected less than budget (" +
                           std::to_string(s.budget) + ")");
  }
  if (s.budget % s.interval != 0) {
    c.fail("budget", "is " + std::to_string(s.budget) + ", expected a multiple of interval (" +
                         std::to_string(s.interval) + ")");
  }
}

Protect parse_protect(const Config& c, const EvictionSchedule& s) {
  const std::optional<std::string> text = c.optional_string("protect");
  if (!text) return {};
  Protect p;
  try {
    p = Protect::parse(*text);
  } catch (const Error&) {
    c.fail("protect", "is \"" + *text + "\", expected 0, a count of first positions, or prompt");
  }
  if (p.count > s.budget - s.interval) {
    c.fail("protect", "is " + *text + ", expected at most budget - interval = " + std::to_string(s.budget - s.interval) +
                          " (W unprotected entries must remain to evict)");
  }
  return p;
}

GoldenRunConfig parse_golden_config(const Config& c) {
  c.check_known_keys({"model", "traces", "output", "budget", "interval", "device", "dtype", "query_tile",
                      "key_tile", "keep_attention", "protect", "dist_timeout_s", "progress_every_s", "expect_model.*"});
  GoldenRunConfig r;
  r.model = c.string("model");
  r.traces = c.string("traces");
  r.output = c.string("output");
  if (std::filesystem::is_directory(r.output)) {
    c.fail("output", "is " + r.output + ", a directory; expected the path of an HDF5 file (created, or resumed)");
  }
  r.runtime = parse_runtime_options(c);
  r.options.schedule = {c.positive_int("budget", 1024), c.positive_int("interval", 256)};
  check_schedule(c, r.options.schedule);
  r.protect = parse_protect(c, r.options.schedule);
  r.options.tiles = {c.positive_int("query_tile", 1024), c.positive_int("key_tile", 1024)};
  r.options.keep_attention = c.boolean("keep_attention", false);
  r.dist_timeout_s = c.positive_int("dist_timeout_s", r.dist_timeout_s);
  r.progress_every_s = c.non_negative_int("progress_every_s", r.progress_every_s);
  r.expect = parse_model_expectation(c);
  r.yaml = c.yaml();
  return r;
}

}  // namespace foresight
