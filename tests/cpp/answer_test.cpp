#include "generate/answer.h"

#include <gtest/gtest.h>

namespace foresight {
namespace {

using Ids = std::vector<int64_t>;
const Ids kStop = {0, 99};

TEST(FinalAnswer, IsTheRunAfterTheLastPrefixUpToTheStopId) {
  // prefix [7 8] occurs at 1 and at 5; the answer is what follows the second, before stop id 0.
  EXPECT_EQ(final_answer({5, 7, 8, 1, 2, 7, 8, 3, 4, 0}, {7, 8}, kStop), Ids({3, 4}));
  // No stop id: up to the end.
  EXPECT_EQ(final_answer({7, 8, 3}, {7, 8}, kStop), Ids({3}));
  // The prefix right before the stop: an empty answer, which is not "no answer".
  EXPECT_EQ(final_answer({7, 8, 99}, {7, 8}, kStop), Ids({}));
}

TEST(FinalAnswer, OverlappingPrefixesTakeTheLastStart) {
  // [7 7] occurs at 0 and 1 in [7 7 7 5]: the last starts at 1, so the answer is [5].
  EXPECT_EQ(final_answer({7, 7, 7, 5}, {7, 7}, kStop), Ids({5}));
}

TEST(FinalAnswer, IsNoneWithoutThePrefixBeforeTheFirstStop) {
  EXPECT_EQ(final_answer({1, 2, 3}, {7, 8}, kStop), std::nullopt);
  EXPECT_EQ(final_answer({7, 1, 8, 2}, {7, 8}, kStop), std::nullopt);  // split by another token
  EXPECT_EQ(final_answer({1, 0, 7, 8, 3}, {7, 8}, kStop), std::nullopt);  // only after the stop
  EXPECT_EQ(final_answer({}, {7, 8}, kStop), std::nullopt);
}

TEST(FinalAnswer, WithoutAPrefixIsTheWholeContinuationLessTheStop) {
  EXPECT_EQ(final_answer({4, 5, 6, 99}, {}, kStop), Ids({4, 5, 6}));
  EXPECT_EQ(final_answer({4, 5, 6}, {}, kStop), Ids({4, 5, 6}));
  EXPECT_EQ(final_answer({4, 5, 6}, {}, {}), Ids({4, 5, 6}));
}

TEST(AnswerIsCorrect, NeedsTheExactRun) {
  const Ids gen = {3, 7, 8, 4, 2, 0};
  EXPECT_TRUE(answer_is_correct(gen, {7, 8}, kStop, {4, 2}));
  EXPECT_FALSE(answer_is_correct(gen, {7, 8}, kStop, {4}));        // a prefix of the run
  EXPECT_FALSE(answer_is_correct(gen, {7, 8}, kStop, {4, 2, 0}));  // the stop id is not part of it
  EXPECT_FALSE(answer_is_correct(gen, {9}, kStop, {4, 2}));        // no marker: no answer
  EXPECT_TRUE(answer_is_correct(gen, {}, kStop, {3, 7, 8, 4, 2}));
}

// Hand-counted: the answer run after the marker {7, 8} is {4, 2, 5, 6} (up to the stop 0).
TEST(AnswerTokenFraction, CountsTokensInPlaceOverTheLongerRun) {
  const Ids gen = {3, 7, 8, 4, 2, 5, 6, 0, 4};
  EXPECT_EQ(answer_token_fraction(gen, {7, 8}, kStop, {4, 2, 5, 6}), 1.0);
  EXPECT_EQ(answer_token_fraction(gen, {7, 8}, kStop, {4, 9, 5, 9}), 0.5);   // 2 of 4 in place
  EXPECT_EQ(answer_token_fraction(gen, {7, 8}, kStop, {2, 5, 6, 4}), 0.0);   // all there, none in place
  EXPECT_EQ(answer_token_fraction(gen, {7, 8}, kStop, {4, 2}), 0.5);        // 2 extra tokens said: 2 of 4
  EXPECT_EQ(answer_token_fraction(gen, {7, 8}, kStop, {4, 2, 5, 6, 1, 1, 1, 1}), 0.5);  // half of it missing
  EXPECT_EQ(answer_token_fraction(gen, {9}, kStop, {4, 2, 5, 6}), 0.0);     // no marker: no answer
}

}  // namespace
}  // namespace foresight
