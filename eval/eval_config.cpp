#include "eval/eval_config.h"

#include <algorithm>

#include "common/config.h"
#include "common/error.h"
#include "model/runtime_config.h"
#include "policy/registry.h"

namespace foresight {

namespace {

// `budgets` items: B (with the config's `interval`) or "B/W".
EvictionSchedule parse_budget(const Config& c, const std::string& item, int64_t interval) {
  EvictionSchedule s{0, interval};
  const auto slash = item.find('/');
  try {
    std::size_t used = 0;
    s.budget = std::stoll(item.substr(0, slash), &used);
    if (used != item.substr(0, slash).size()) throw std::invalid_argument(item);
    if (slash == std::string::npos && interval == 0) {
      c.fail("budgets", "has \"" + item + "\" without its W, and there is no interval key to take it from");
    }
    if (slash != std::string::npos) {
      s.interval = std::stoll(item.substr(slash + 1), &used);
      if (used != item.size() - slash - 1) throw std::invalid_argument(item);
    }
  } catch (const std::logic_error&) {
    c.fail("budgets", "has \"" + item + "\", expected a budget B or \"B/W\"");
  }
  try {
    s.validate();
  } catch (const Error& e) {
    c.fail("budgets", "has \"" + item + "\": " + e.what());
  }
  return s;
}

}  // namespace

std::vector<std::string> parse_policies(const Config& c, const std::string& scorer, bool decode_time) {
  std::vector<std::string> all;
  for (const PolicyPreset& p : policy_presets()) {
    if ((!p.needs_scorer || !scorer.empty()) && (!decode_time || !p.needs_oracle)) all.push_back(p.name);
  }
  std::vector<std::string> policies = c.scalar_list("policies", all);
  for (const std::string& name : policies) {
    if (std::count(policies.begin(), policies.end(), name) > 1) {
      c.fail("policies", "lists " + name + " twice; list each policy once");
    }
    if (decode_time && name == "full") {
      c.fail("policies", "lists full: the full-cache row is always run; list only eviction policies");
    }
    const PolicyPreset* preset = nullptr;
    try {
      preset = &find_policy(name);
    } catch (const Error& e) {
      c.fail("policies", std::string("has ") + e.what());
    }
    if (preset->needs_scorer && scorer.empty()) {
      c.fail("policies", "lists " + name + ", which needs a trained scorer: set scorer=DIR");
    }
    if (decode_time && preset->needs_oracle) {
      c.fail("policies", "lists " + name + ", which needs the future (Golden Eviction's oracle) and cannot decide "
                         "while generating; remove it");
    }
  }
  return policies;
}

std::vector<PolicyVariant> parse_variants(const Config& c, const std::vector<std::string>& policies) {
  std::vector<std::optional<Protect>> values;  // nullopt: the policy's default
  for (const std::string& item : c.scalar_or_list("protect", {"default"})) {
    if (item == "default") {
      values.push_back(std::nullopt);
      continue;
    }
    try {
      values.push_back(Protect::parse(item));
    } catch (const Error&) {
      c.fail("protect", "has \"" + item + "\", expected default, a count of first positions, or prompt");
    }
  }
  std::vector<PolicyVariant> variants;
  for (const std::string& name : policies) {
    const PolicyPreset& preset = find_policy(name);
    for (const std::optional<Protect>& v : values) {
      const Protect protect = v.value_or(preset.default_protect);
      const std::string variant = variant_name(preset, protect);
      const auto same = [&](const PolicyVariant& x) { return x.name == variant; };
      if (std::none_of(variants.begin(), variants.end(), same)) variants.push_back({name, protect, variant});
    }
  }
  return variants;
}

std::vector<EvictionSchedule> parse_schedules(const Config& c) {
  std::vector<EvictionSchedule> schedules;
  const int64_t interval = c.positive_int("interval", 0);
  for (const std::string& item : c.scalar_list("budgets", {})) {
    const EvictionSchedule s = parse_budget(c, item, interval);
    for (const EvictionSchedule& earlier : schedules) {
      // Both would write the same runs/<policy>/B<B>_W<W>/ folder and table rows.
      if (earlier.budget == s.budget && earlier.interval == s.interval) {
        c.fail("budgets", "lists B " + std::to_string(s.budget) + ", W " + std::to_string(s.interval) +
                              " twice (\"" + item + "\"); list each schedule once");
      }
    }
    schedules.push_back(s);
  }
  if (schedules.empty()) c.fail("budgets", "is missing (expected a list such as [32, 64, \"128/16\"])");
  return schedules;
}

EvalConfig parse_eval_config(const Config& c) {
  c.check_known_keys({"mode", "model", "golden", "output_dir", "scorer", "device", "dtype", "policies", "budgets",
                      "interval", "protect", "max_traces", "reward.threshold", "reward.exclude_fraction", "seed",
                      "expect_model.*"});
  EvalConfig r;
  r.model = c.string("model");
  r.golden = c.string("golden");
  r.output_dir = c.string("output_dir");
  r.scorer = c.optional_string("scorer").value_or("");
  r.runtime = parse_runtime_options(c);
  r.policies = parse_policies(c, r.scorer, false);
  r.variants = parse_variants(c, r.policies);
  r.schedules = parse_schedules(c);
  r.max_traces = c.non_negative_int("max_traces", 0);
  r.reward.threshold = c.positive_number("reward.threshold", r.reward.threshold);
  r.reward.exclude_fraction = c.non_negative_number("reward.exclude_fraction", r.reward.exclude_fraction);
  if (r.reward.exclude_fraction >= 1) c.fail("reward.exclude_fraction", "is " + c.string("reward.exclude_fraction") + ", expected a fraction below 1");
  r.seed = static_cast<uint64_t>(c.non_negative_int("seed", 0));
  r.expect = parse_model_expectation(c);
  r.yaml = c.yaml();
  return r;
}

}  // namespace foresight
