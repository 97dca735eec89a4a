// SPDX-License-Identifier: BSD-2-Clause
// The daemon's logger (config/logging): one logger for the life of the process; a reload
// changes only its level, while MTA threads log. Under the TSan build (tests/run-all) the
// race of the old reload, which replaced the default logger under the threads' feet, is a
// report; in any build it could crash in logger::sink_it_.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "config/logging.h"

namespace pm {
namespace {

// Sends fd 2 to a file while it lives: the test logs thousands of lines.
class StderrToFile {
  public:
    StderrToFile() {
        std::fflush(stderr);
        saved_ = ::dup(2);
        path_ = ::testing::TempDir() + "pm-logging-test-stderr.log";
        std::FILE* f = std::fopen(path_.c_str(), "w");
        if (f) {
            ::dup2(::fileno(f), 2);
            std::fclose(f);
        }
    }
    ~StderrToFile() {
        std::fflush(stderr);
        if (saved_ >= 0) {
            ::dup2(saved_, 2);
            ::close(saved_);
        }
        std::remove(path_.c_str());
    }
    StderrToFile(const StderrToFile&) = delete;
    StderrToFile& operator=(const StderrToFile&) = delete;

  private:
    int saved_ = -1;
    std::string path_;
};

TEST(Logging, ReloadChangesTheLevelOfTheOneLoggerWhileThreadsLog) {
    StderrToFile quiet;
    ASSERT_EQ(setup_logging("stderr", "info"), std::nullopt);
    spdlog::logger* logger = spdlog::default_logger_raw();
    EXPECT_EQ(log_level_name(), "info");

    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&stop, t] {
            for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
                spdlog::info("thread {} line {}", t, i);
                spdlog::debug("thread {} debug line {}", t, i);
            }
        });
    // What a reload does, many times, both ways in: the second setup_logging() of the old
    // code path and set_log_level().
    for (int i = 0; i < 2000; ++i) {
        const char* level = i % 2 ? "debug" : "info";
        if (i % 4 < 2)
            ASSERT_EQ(set_log_level(level), std::nullopt);
        else
            ASSERT_EQ(setup_logging("stderr", level), std::nullopt);
        EXPECT_EQ(spdlog::default_logger_raw(), logger) << "the logger was replaced";
    }
    stop = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(spdlog::default_logger_raw(), logger);
    EXPECT_EQ(log_level_name(), "debug");
}

TEST(Logging, SetLogLevelRefusesAnUnknownLevelAndKeepsTheOldOne) {
    ASSERT_EQ(setup_logging("stderr", "warning"), std::nullopt);
    EXPECT_NE(set_log_level("verbose"), std::nullopt);
    EXPECT_EQ(log_level_name(), "warning");
    EXPECT_EQ(set_log_level("error"), std::nullopt);
    EXPECT_EQ(log_level_name(), "error");
    EXPECT_EQ(set_log_level("warn"), std::nullopt);
    EXPECT_EQ(log_level_name(), "warning");
}

}  // namespace
}  // namespace pm
