// SPDX-License-Identifier: BSD-2-Clause
#include <gtest/gtest.h>

#include "policy/ip.h"
#include "policy/string_set.h"
#include "test_util.h"

namespace pm {
namespace {

TEST(Ip, ParseAndPrint) {
    EXPECT_EQ(parse_ip("192.0.2.1")->to_string(), "192.0.2.1");
    EXPECT_EQ(parse_ip("2001:DB8::1")->to_string(), "2001:db8::1");
    EXPECT_EQ(parse_ip("::ffff:192.0.2.1")->to_string(), "192.0.2.1");
    EXPECT_FALSE(parse_ip("192.0.2"));
    EXPECT_FALSE(parse_ip("192.0.2.256"));
    EXPECT_FALSE(parse_ip("01.2.3.4"));
    EXPECT_FALSE(parse_ip("fe80::1%eth0"));
    EXPECT_FALSE(parse_ip("example.com"));
    EXPECT_FALSE(parse_ip(""));
}

TEST(Ip, Prefixes) {
    auto p = parse_ip_prefix("10.1.2.3/8");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->host_bits_set);
    EXPECT_EQ(p->address.to_string(), "10.0.0.0");
    EXPECT_FALSE(parse_ip_prefix("10.0.0.0/33"));
    EXPECT_FALSE(parse_ip_prefix("10.0.0.0/"));
    EXPECT_FALSE(parse_ip_prefix("2001:db8::/129"));
    auto mapped = parse_ip_prefix("::ffff:10.0.0.0/104");
    ASSERT_TRUE(mapped);
    EXPECT_FALSE(mapped->address.v6);
    EXPECT_EQ(mapped->length, 8u);
}

TEST(Ip, PrefixProblemsSayWhy) {
    testing::expect_each(
        [](const std::string& in) { return ip_prefix_problem(in); },
        {
            {"10.0.0", "an IPv4 address has four parts, not 3"},
            {"10..0.1", "an IPv4 address has no empty parts"},
            {"10.0.0.256", "part '256' is more than 255"},
            {"10.0.0.1000", "part '1000' is more than 255"},
            {"010.0.0.1",
             "leading zeros are not allowed (some software reads 010 as octal 8): write "
             "10.0.0.1"},
            {"010.000.0.0/8",
             "leading zeros are not allowed (some software reads 010 as octal 8): write "
             "10.0.0.0/8"},
            {"fe80::1%eth0", "zone indexes ('%' and what follows) are not allowed"},
            {"10.0.0.0/", "no prefix length after '/'"},
            {"10.0.0.0/x", "prefix length 'x' is not a number"},
            {"10.0.0.0/08", "prefix length '08' has a leading zero"},
            {"10.0.0.0/33", "an IPv4 prefix length is at most 32, not 33"},
            {"2001:db8::/129", "an IPv6 prefix length is at most 128, not 129"},
            {"2001:db8::/1280", "an IPv6 prefix length is at most 128, not 1280"},
            // Not meant as an address, or nothing more to say.
            {"example.com", ""},
            {"::", ""},
            {"2001:db8:::1", ""},
            {"10.0.0.1", ""},
            {"", ""},
        });
}

TEST(IpSet, MergesAndFindsEdges) {
    IpSet set;
    set.add(*parse_ip_prefix("10.0.0.0/9"));
    set.add(*parse_ip_prefix("10.128.0.0/9"));  // adjacent: merges to 10/8
    set.add(*parse_ip_prefix("10.1.0.0/16"));   // inside
    set.add(*parse_ip_prefix("255.255.255.255/32"));
    set.add(*parse_ip_prefix("::/0"));
    set.finish();
    EXPECT_EQ(set.interval_count(), 3u);
    EXPECT_TRUE(set.contains(*parse_ip("10.0.0.0")));
    EXPECT_TRUE(set.contains(*parse_ip("10.255.255.255")));
    EXPECT_FALSE(set.contains(*parse_ip("11.0.0.0")));
    EXPECT_FALSE(set.contains(*parse_ip("9.255.255.255")));
    EXPECT_TRUE(set.contains(*parse_ip("255.255.255.255")));
    EXPECT_TRUE(set.contains(*parse_ip("2001:db8::1")));
    EXPECT_FALSE(IpSet().contains(*parse_ip("10.0.0.1")));
}

TEST(StringSet, InsertFindGrow) {
    StringSet s;
    for (int i = 0; i < 100000; ++i) EXPECT_TRUE(s.insert("user" + std::to_string(i) + "@x"));
    EXPECT_FALSE(s.insert("user5@x"));
    EXPECT_EQ(s.size(), 100000u);
    EXPECT_TRUE(s.contains("user99999@x"));
    EXPECT_FALSE(s.contains("user100000@x"));
    EXPECT_TRUE(s.insert(std::string(300, 'a')));  // multi-byte length prefix
    EXPECT_TRUE(s.contains(std::string(300, 'a')));
    EXPECT_TRUE(s.insert(""));
    EXPECT_TRUE(s.contains(""));
}

}  // namespace
}  // namespace pm
