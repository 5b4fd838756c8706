#include "sft/sft_config.h"

#include "common/config.h"
#include "model/runtime_config.h"

namespace foresight {

SftConfig parse_sft_config(const Config& c) {
  c.check_known_keys({"model", "golden", "output_dir", "device", "dtype", "features", "max_steps", "batch_size",
                      "lr", "lr_schedule", "warmup_steps", "max_grad_norm", "margin", "heldout_fraction",
                      "eval_every", "save_every", "keep_last_n", "dist_timeout_s", "seed", "expect_model.*"});
  SftConfig r;
  r.model = c.string("model");
  r.golden = c.string("golden");
  r.output_dir = c.string("output_dir");
  r.runtime = parse_runtime_options(c);
  r.features = parse_feature_set(c.choice("features", {"recency", "reference"}, "recency"));
  r.max_steps = c.positive_int("max_steps", r.max_steps);
  r.batch_size = c.positive_int("batch_size", r.batch_size);
  r.lr = c.positive_number("lr", r.lr);
  r.lr_schedule = c.choice("lr_schedule", {"cosine", "constant"}, r.lr_schedule);
  r.warmup_steps = c.non_negative_int("warmup_steps", r.warmup_steps);
  r.max_grad_norm = c.positive_number("max_grad_norm", r.max_grad_norm);
  r.margin = c.positive_number("margin", r.margin);
  r.heldout_fraction = c.positive_number("heldout_fraction", r.heldout_fraction);
  if (r.heldout_fraction >= 1) c.fail("heldout_fraction", "is " + c.string("heldout_fraction") + ", expected a fraction below 1");
  r.eval_every = c.positive_int("eval_every", r.eval_every);
  r.save_every = c.positive_int("save_every", r.save_every);
  r.keep_last_n = c.positive_int("keep_last_n", r.keep_last_n);
  r.dist_timeout_s = c.positive_int("dist_timeout_s", r.dist_timeout_s);
  r.seed = static_cast<uint64_t>(c.non_negative_int("seed", 0));
  r.expect = parse_model_expectation(c);
  r.yaml = c.yaml();
  return r;
}

}  // namespace foresight
