#include "golden/golden_config.h"

#include "common/config.h"
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

GoldenRunConfig parse_golden_config(const Config& c) {
  c.check_known_keys({"model", "traces", "output", "budget", "interval", "device", "dtype", "query_tile",
                      "key_tile", "keep_attention", "dist_timeout_s", "expect_model.*"});
  GoldenRunConfig r;
  r.model = c.string("model");
  r.traces = c.string("traces");
  r.output = c.string("output");
  r.runtime = parse_runtime_options(c);
  r.options.schedule = {c.positive_int("budget", 1024), c.positive_int("interval", 256)};
  check_schedule(c, r.options.schedule);
  r.options.tiles = {c.positive_int("query_tile", 1024), c.positive_int("key_tile", 1024)};
  r.options.keep_attention = c.boolean("keep_attention", false);
  r.dist_timeout_s = c.positive_int("dist_timeout_s", r.dist_timeout_s);
  r.expect = parse_model_expectation(c);
  r.yaml = c.yaml();
  return r;
}

}  // namespace foresight
