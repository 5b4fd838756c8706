#include "golden/golden_config.h"

#include <regex>

#include "common/cli.h"
#include "common/config.h"
#include "common/error.h"

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

ModelExpectation parse_model_expectation(const Config& c) {
  ModelExpectation e;
  if (c.has("expect_model.architecture")) {
    e.architecture = c.choice("expect_model.architecture", {"qwen2", "qwen3", "llama"}, "");
  }
  e.layers = c.positive_int("expect_model.layers", 0);
  e.heads = c.positive_int("expect_model.heads", 0);
  e.kv_heads = c.positive_int("expect_model.kv_heads", 0);
  e.head_dim = c.positive_int("expect_model.head_dim", 0);
  return e;
}

GoldenRunConfig parse_golden_config(const Config& c) {
  c.check_known_keys({"model", "traces", "output", "budget", "interval", "device", "dtype", "query_tile",
                      "key_tile", "keep_attention", "expect_model.architecture", "expect_model.layers",
                      "expect_model.heads", "expect_model.kv_heads", "expect_model.head_dim"});
  GoldenRunConfig r;
  r.model = c.string("model");
  r.traces = c.string("traces");
  r.output = c.string("output");
  r.device = c.optional_string("device").value_or("cpu");
  if (!std::regex_match(r.device, std::regex("cpu|cuda(:[0-9]+)?"))) {
    c.fail("device", "is \"" + r.device + "\", expected cpu, cuda or cuda:N");
  }
  r.dtype = parse_dtype(c.choice("dtype", {"float32", "bfloat16", "float16"}, "float32"));
  r.options.schedule = {c.positive_int("budget", 1024), c.positive_int("interval", 256)};
  check_schedule(c, r.options.schedule);
  r.options.tiles = {c.positive_int("query_tile", 1024), c.positive_int("key_tile", 1024)};
  r.options.keep_attention = c.boolean("keep_attention", false);
  r.expect = parse_model_expectation(c);
  r.yaml = c.yaml();
  return r;
}

}  // namespace foresight
