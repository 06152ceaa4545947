// Lease tokens are unguessable and tell a caller nothing about services it may not see: their
// secret part comes from the CSPRNG (never from the seedable jitter source, which a worker can
// observe through its delays), and a token that is not an envelope's current one is answered
// LEASE_NOT_FOUND for an envelope of another service, exactly as for an id that does not exist.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "server/util/random.h"
#include "server/util/secure_random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

// An engine over a fresh store whose retries fall due 1 ms after a failure, with a jitter source
// seeded alike in every instance.
class TokenEngine {
 public:
  explicit TokenEngine(const std::string& dir) : rng_(1) {
    Policy policy;
    policy.backoff = BackoffSpec{absl::Milliseconds(1), 1.0, absl::Milliseconds(1),
                                 JitterKind::kNone, 0.0};
    policies_ = std::make_unique<PolicySet>(*PolicySet::Create({policy}));
    store_ = *SqliteStore::Open(dir);
    engine_ = *Engine::Start(store_.get(), policies_.get(), &clock_, &rng_, EngineOptions());
  }

  // Reports a first failure of `service`/`id`, makes it due and leases it; its token.
  std::string LeaseOne(const std::string& service, const std::string& id) {
    Envelope e = testing::BillingEnvelope(id);
    e.service = service;
    absl::Notification reported;
    engine_->ReportFailure(e, testing::TransientFailure(), "",
                           [&](absl::StatusOr<Decision>) { reported.Notify(); });
    reported.WaitForNotification();
    clock_.Advance(absl::Milliseconds(2));
    LeaseArgs args;
    args.service = service;
    absl::Notification leased;
    std::string token;
    engine_->Lease(std::move(args), [&](absl::StatusOr<std::vector<LeasedItem>> items) {
      if (items.ok() && items->size() == 1) token = (*items)[0].lease_token;
      leased.Notify();
    });
    leased.WaitForNotification();
    return token;
  }

  absl::Status Success(const std::string& service, const std::string& token) {
    absl::Notification done;
    absl::Status status;
    engine_->ReportSuccess(service, token, [&](absl::Status s) {
      status = s;
      done.Notify();
    });
    done.WaitForNotification();
    return status;
  }

  absl::Status Extend(const std::string& token, Engine::ServiceCheck may_act_for) {
    absl::Notification done;
    absl::Status status;
    engine_->ExtendLease(token, absl::Seconds(30), std::move(may_act_for),
                         [&](absl::StatusOr<absl::Time> t) {
                           status = t.status();
                           done.Notify();
                         });
    done.WaitForNotification();
    return status;
  }

 private:
  testing::FakeClock clock_;
  MtRandom rng_;
  std::unique_ptr<PolicySet> policies_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<Engine> engine_;
};

std::string SecretOf(const std::string& token) {
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  return parts.size() == 3 ? parts[2] : "";
}

TEST(LeaseTokenTest, TheSecretComesFromTheCsprngNotFromTheJitterSource) {
  const std::string dir = testing::MakeTempDir();
  std::string a, b;
  {
    TokenEngine first(dir + "/a");
    TokenEngine second(dir + "/b");
    a = first.LeaseOne("billing", "m1");
    b = second.LeaseOne("billing", "m1");
  }
  testing::RemoveTree(dir);
  // Same id, attempt and jitter seed: only a secret from elsewhere makes them differ.
  ASSERT_EQ(SecretOf(a).size(), 32u) << a;
  EXPECT_NE(SecretOf(a), SecretOf(b));
  EXPECT_EQ(a.substr(0, a.rfind('.')), b.substr(0, b.rfind('.')));
}

TEST(LeaseTokenTest, AForgedTokenTellsNothingAboutAnotherServicesEnvelope) {
  const std::string dir = testing::MakeTempDir();
  {
    TokenEngine engine(dir + "/data");
    const std::string token = engine.LeaseOne("payroll", "secret-1");
    ASSERT_FALSE(token.empty());
    // The envelope is leased at attempt 1; a forged token for an earlier attempt with a made-up
    // secret names it. Asked as billing (which may not see payroll), the answer is the one for
    // an id that does not exist.
    const std::string probe = token.substr(0, token.find('.')) + ".0." + std::string(32, 'a');
    const absl::Status foreign = engine.Success("billing", probe);
    const absl::Status unknown = engine.Success("billing", "424242.0." + std::string(32, 'a'));
    EXPECT_TRUE(absl::IsFailedPrecondition(foreign)) << foreign;
    EXPECT_NE(foreign.message().find("LEASE_NOT_FOUND"), std::string::npos) << foreign;
    EXPECT_EQ(foreign.message(), unknown.message());
    // ExtendLease by a caller limited to billing: the same.
    const absl::Status extend =
        engine.Extend(probe, [](const std::string& s) { return s == "billing"; });
    EXPECT_NE(extend.message().find("LEASE_NOT_FOUND"), std::string::npos) << extend;
    // Its own service's caller is told the truth: that token was superseded.
    const absl::Status own = engine.Success("payroll", probe);
    EXPECT_NE(own.message().find("LEASE_EXPIRED"), std::string::npos) << own;
    // And the real token still works.
    EXPECT_TRUE(engine.Success("payroll", token).ok());
  }
  testing::RemoveTree(dir);
}

TEST(LeaseTokenTest, ConstantTimeEqualsComparesWholeValues) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  absl::StatusOr<std::string> hex = SecureRandomHex(16);
  ASSERT_TRUE(hex.ok());
  EXPECT_EQ(hex->size(), 32u);
  EXPECT_EQ(hex->find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace retryd
