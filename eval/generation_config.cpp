#include "eval/generation_config.h"

#include "common/config.h"
#include "eval/eval_config.h"
#include "model/runtime_config.h"

namespace foresight {

GenerationEvalConfig parse_generation_config(const Config& c) {
  c.check_known_keys({"mode", "model", "problems", "output_dir", "scorer", "device", "dtype", "policies", "budgets",
                      "interval", "protect", "samples", "temperature", "top_p", "top_k", "max_new_tokens", "stop_ids",
                      "max_problems", "seed", "threads", "expect_model.*"});
  GenerationEvalConfig r;
  r.model = c.string("model");
  r.problems = c.string("problems");
  r.output_dir = c.string("output_dir");
  r.scorer = c.optional_string("scorer").value_or("");
  r.runtime = parse_runtime_options(c);
  r.policies = parse_policies(c, r.scorer, true);
  r.variants = parse_variants(c, r.policies);
  r.schedules = parse_schedules(c);
  r.samples = c.positive_int("samples", 1);
  r.temperature = c.non_negative_number("temperature", 0);
  r.top_p = c.positive_number("top_p", 1);
  if (r.top_p > 1) c.fail("top_p", "is " + c.string("top_p") + ", expected a probability mass in (0, 1]");
  r.top_k = c.non_negative_int("top_k", 0);
  r.max_new_tokens = c.positive_int("max_new_tokens");
  if (c.has("stop_ids")) r.stop_ids = c.non_negative_int_list("stop_ids", "token ids");
  r.max_problems = c.non_negative_int("max_problems", 0);
  r.seed = static_cast<uint64_t>(c.non_negative_int("seed", 0));
  r.threads = static_cast<int>(c.non_negative_int("threads", 0));
  r.expect = parse_model_expectation(c);
  r.yaml = c.yaml();
  return r;
}

}  // namespace foresight
