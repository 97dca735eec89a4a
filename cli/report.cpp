// SPDX-License-Identifier: BSD-2-Clause
#include "cli/report.h"

#include <zlib.h>

#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <iomanip>
#include <map>
#include <ostream>
#include <utility>

#include "config/log_escape.h"

namespace pm {

namespace {

// A line longer than this is no line the daemon wrote (syslog(3) and journald cut far
// shorter ones): it is skipped, and not kept whole in memory.
constexpr std::size_t kMaxLine = 64 << 10;
constexpr std::size_t kTop = 10;  // rows of each "top" table

// Reads a decision line from left to right; every step fails on anything unexpected.
class Cursor {
  public:
    explicit Cursor(std::string_view s) : s_(s) {}
    bool done() const { return s_.empty(); }
    bool literal(std::string_view lit) {
        if (s_.substr(0, lit.size()) != lit) return false;
        s_.remove_prefix(lit.size());
        return true;
    }
    // Up to (not including) the first of `stops`, or the end.
    std::string_view until(std::string_view stops) {
        std::size_t n = std::min(s_.find_first_of(stops), s_.size());
        std::string_view part = s_.substr(0, n);
        s_.remove_prefix(n);
        return part;
    }
    // A bare token, unescaped; empty tokens are not written.
    std::optional<std::string> token() {
        std::string_view raw = until(" ");
        if (raw.empty()) return std::nullopt;
        return unescape_log_value(raw, LogValue::Token);
    }
    // "-" (nullopt inside) or <value>, then the end of the token.
    std::optional<std::optional<std::string>> bracketed() {
        if (literal("-"))
            return at_token_end()
                       ? std::optional<std::optional<std::string>>(std::optional<std::string>())
                       : std::nullopt;
        if (!literal("<")) return std::nullopt;
        std::string_view raw = until("> ");
        if (!literal(">") || !at_token_end()) return std::nullopt;
        auto value = unescape_log_value(raw, LogValue::Token);
        if (!value) return std::nullopt;
        return std::optional<std::string>(std::move(*value));
    }
    // "value" with \" and \\ inside, then the end of the token.
    std::optional<std::string> quoted() {
        if (!literal("\"")) return std::nullopt;
        std::size_t i = 0;
        while (i < s_.size() && s_[i] != '"') i += s_[i] == '\\' ? 2 : 1;
        if (i >= s_.size()) return std::nullopt;  // no closing quote: cut short
        std::string_view raw = s_.substr(0, i);
        s_.remove_prefix(i + 1);
        if (!at_token_end()) return std::nullopt;
        return unescape_log_value(raw, LogValue::Quoted);
    }

  private:
    bool at_token_end() const { return s_.empty() || s_.front() == ' '; }
    std::string_view s_;
};

bool parse_client(Cursor& c, DecisionLine& d) {
    if (!c.literal("client=")) return false;
    auto name = unescape_log_value(c.until("[ "), LogValue::Token);
    if (!name || name->empty() || !c.literal("[")) return false;
    auto ip = unescape_log_value(c.until("] "), LogValue::Token);
    if (!ip || ip->empty() || !c.literal("]")) return false;
    d.client_name = std::move(*name);
    d.client_ip = std::move(*ip);
    return true;
}

bool parse_rule_action(Cursor& c, DecisionLine& d) {
    auto stage = c.literal(" stage=") ? c.token() : std::nullopt;
    if (!stage || !c.literal(" rule=")) return false;
    d.stage = std::move(*stage);
    // Exactly "-" is no rule; a rule's id may start with '-' ("-block"), written as is.
    std::string_view raw = c.until(" ");
    if (raw.empty()) return false;
    if (raw != "-") {
        d.rule = unescape_log_value(raw, LogValue::Token);
        if (!d.rule) return false;
    }
    auto action = c.literal(" action=") ? c.token() : std::nullopt;
    if (!action) return false;
    d.action = std::move(*action);
    if (c.literal(" reply=") && !(d.reply = c.quoted())) return false;
    return true;
}

bool parse_envelope(Cursor& c, DecisionLine& d) {
    for (auto [key, field] :
         {std::pair{" helo=", &d.helo}, std::pair{" from=", &d.from}, std::pair{" to=", &d.to}}) {
        if (!c.literal(key)) return false;
        auto value = c.bracketed();
        if (!value) return false;
        *field = std::move(*value);
    }
    return true;
}

bool parse_nrcpt(Cursor& c, DecisionLine& d) {
    auto n = c.token();
    if (!n || n->size() > 9 ||
        !std::all_of(n->begin(), n->end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return false;
    d.nrcpt = std::stoull(*n);
    return true;
}

// header=, reason=, nrcpt=, error=: each at most once, in this order.
bool parse_extras(Cursor& c, DecisionLine& d) {
    if (c.literal(" header=") && !(d.header = c.quoted())) return false;
    if (c.literal(" reason=") && !(d.reason = c.quoted())) return false;
    if (c.literal(" nrcpt=") && !parse_nrcpt(c, d)) return false;
    if (c.literal(" error=") && !(d.error = c.quoted())) return false;
    return c.done();
}

int two_digits(std::string_view s, std::size_t at) {
    if (at + 2 > s.size() || s[at] < '0' || s[at] > '9' || s[at + 1] < '0' || s[at + 1] > '9')
        return -1;
    return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

// `s` has each of `seps` (position, byte).
bool has_separators(std::string_view s, std::initializer_list<std::pair<std::size_t, char>> seps) {
    return std::all_of(seps.begin(), seps.end(),
                       [s](const auto& p) { return p.first < s.size() && s[p.first] == p.second; });
}

// A calendar time's fields, each in its range (mon 1-12); -1 fails.
bool valid_time(int mon, int day, int hour, int minute, int second) {
    return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hour >= 0 && hour <= 23 &&
           minute >= 0 && minute <= 59 && second >= 0 && second <= 60;
}

std::tm make_tm(int year, int mon, int day, int hour, int minute, int second) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    tm.tm_isdst = -1;
    return tm;
}

// "Mmm dd hh:mm:ss " (dd may be " 7"): local time, in now's year or the one before.
std::optional<std::int64_t> traditional_time(std::string_view s, std::int64_t now) {
    static constexpr std::string_view kMonths = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (!has_separators(s, {{3, ' '}, {6, ' '}, {9, ':'}, {12, ':'}, {15, ' '}}))
        return std::nullopt;
    std::size_t month = kMonths.find(s.substr(0, 3));
    int mon = month == std::string_view::npos || month % 3 ? -1 : static_cast<int>(month / 3) + 1;
    int day = s[4] == ' ' ? two_digits(std::string("0") + s[5], 0) : two_digits(s, 4);
    int hour = two_digits(s, 7), minute = two_digits(s, 10), second = two_digits(s, 13);
    if (!valid_time(mon, day, hour, minute, second)) return std::nullopt;
    // mktime() reads the time zone each time; a log has runs of lines in the same second.
    static thread_local std::string last_key;
    static thread_local std::int64_t last_now = 0, last_time = 0;
    if (now == last_now && s.substr(0, 15) == last_key) return last_time;
    auto now_t = static_cast<std::time_t>(now);
    std::tm now_tm{};
    localtime_r(&now_t, &now_tm);
    for (int year : {now_tm.tm_year + 1900, now_tm.tm_year + 1899}) {
        std::tm tm = make_tm(year, mon, day, hour, minute, second);
        std::int64_t t = std::mktime(&tm);
        if (t > now + 86400) continue;
        last_key = s.substr(0, 15);
        last_now = now;
        last_time = t;
        return t;
    }
    return std::nullopt;
}

// "+hh:mm", "+hhmm", "-..." or "Z" at `at`: the offset in seconds and the length read.
std::optional<std::pair<int, std::size_t>> utc_offset(std::string_view s, std::size_t at) {
    if (at < s.size() && s[at] == 'Z') return std::pair{0, std::size_t{1}};
    if (at >= s.size() || (s[at] != '+' && s[at] != '-')) return std::nullopt;
    int sign = s[at] == '-' ? -1 : 1;
    int hours = two_digits(s, at + 1);
    std::size_t m = at + 3 < s.size() && s[at + 3] == ':' ? at + 4 : at + 3;
    int minutes = two_digits(s, m);
    if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) return std::nullopt;
    return std::pair{sign * (hours * 3600 + minutes * 60), m + 2 - at};
}

// "YYYY-MM-DDThh:mm:ss[.frac]OFFSET ": the time and the length read (with the blank).
std::optional<std::pair<std::int64_t, std::size_t>> rfc3339_time(std::string_view s) {
    if (!has_separators(s, {{4, '-'}, {7, '-'}, {10, 'T'}, {13, ':'}, {16, ':'}}) || s.size() < 20)
        return std::nullopt;
    int century = two_digits(s, 0), year = two_digits(s, 2);
    int mon = two_digits(s, 5), day = two_digits(s, 8);
    int hour = two_digits(s, 11), minute = two_digits(s, 14), second = two_digits(s, 17);
    if (century < 0 || year < 0 || !valid_time(mon, day, hour, minute, second)) return std::nullopt;
    std::size_t at = 19;
    if (s[at] == '.')
        for (++at; at < s.size() && s[at] >= '0' && s[at] <= '9';) ++at;
    auto offset = utc_offset(s, at);
    if (!offset || at + offset->second >= s.size() || s[at + offset->second] != ' ')
        return std::nullopt;
    std::tm tm = make_tm(century * 100 + year, mon, day, hour, minute, second);
    return std::pair{static_cast<std::int64_t>(timegm(&tm)) - offset->first,
                     at + offset->second + 1};
}

// "HOST IDENT[PID]: " or "HOST IDENT: ": the ident, the rest is the message.
bool split_host_ident(std::string_view rest, SyslogLine& line) {
    std::size_t host_end = rest.find(' ');
    if (host_end == 0 || host_end == std::string_view::npos) return false;
    rest.remove_prefix(host_end + 1);
    std::size_t colon = rest.find(": ");
    if (colon == 0 || colon == std::string_view::npos) return false;
    std::string_view tag = rest.substr(0, colon);
    if (tag.find(' ') != std::string_view::npos) return false;
    if (!tag.empty() && tag.back() == ']') {
        std::size_t open = tag.find('[');
        if (open == 0 || open == std::string_view::npos) return false;
        std::string_view pid = tag.substr(open + 1, tag.size() - open - 2);
        if (pid.empty() ||
            !std::all_of(pid.begin(), pid.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
            return false;
        tag = tag.substr(0, open);
    }
    line.ident = tag;
    line.message = rest.substr(colon + 2);
    return true;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

// "550 5.1.1" from "550 5.1.1 text", "451" from "451 text".
std::string reply_code(std::string_view reply) {
    std::string_view code = reply.substr(0, 3);
    reply.remove_prefix(code.size());
    if (reply.size() > 6 && reply[0] == ' ' && reply[2] == '.' &&
        (reply[1] == '2' || reply[1] == '4' || reply[1] == '5'))
        return std::string(code) + std::string(reply.substr(0, reply.find(' ', 1)));
    return std::string(code);
}

// A value as the report prints it: escaped again as in the log, so that what a client
// chose can neither break the table nor reach the terminal as a control sequence.
std::string shown(std::string_view value, LogValue kind = LogValue::Token) {
    std::string out;
    append_log_value(out, value, kind);
    return out;
}

void count_decision(ReportData& data, const DecisionLine& d) {
    ++data.decisions;
    std::string rule = d.rule ? shown(*d.rule) : "-";
    data.by_rule.add("rule=" + rule + " action=" + shown(d.action) + " stage=" + shown(d.stage));
    data.by_action.add(shown(d.action));
    data.by_stage.add(shown(d.stage));
    if (d.reply) data.reply_codes.add(shown(reply_code(*d.reply), LogValue::Quoted));
    if (d.error) data.store_errors.add("error=\"" + shown(*d.error, LogValue::Quoted) + '"');
    // A store failure's tempfail is not the client's doing (the fail2ban filter agrees).
    if ((d.action != "reject" && d.action != "tempfail") || d.error) return;
    data.refused_clients.add(shown(d.client_name) + '[' + shown(d.client_ip) + ']');
    if (d.from) data.refused_senders.add('<' + shown(*d.from) + '>');
    if (d.to) data.refused_recipients.add('<' + shown(*d.to) + '>');
}

// The daemon's own lines that are not decisions: reloads and counter store trouble.
void count_other(ReportData& data, std::string_view message) {
    if (starts_with(message, "reloaded: ")) ++data.reloads_ok;
    if (starts_with(message, "reload failed") ||
        (starts_with(message, "reload of ") &&
         contains(message, " failed, keeping the running policy")))
        ++data.reloads_failed;
    if (starts_with(message, "counter store not reachable at start: ") ||
        (starts_with(message, "counter store ") && contains(message, "; retrying with backoff")))
        data.store_errors.add(escape_log_line(message));
}

std::string format_time(std::int64_t t) {
    auto tt = static_cast<std::time_t>(t);
    std::tm tm{};
    localtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z", &tm);
    return buf;
}

// Largest first, then by name, at most `limit` rows.
std::vector<std::pair<std::string, std::uint64_t>> ranked(const Tally& tally, std::size_t limit) {
    const auto& counts = tally.counts();
    std::vector<std::pair<std::string, std::uint64_t>> rows(counts.begin(), counts.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (rows.size() > limit) rows.resize(limit);
    return rows;
}

void print_folded(std::ostream& out, const Tally& tally) {
    if (tally.folded_values == 0) return;
    out << std::setw(8) << tally.folded_count << "   (others: " << tally.folded_values
        << " less frequent values, not kept; a count above may be low by up to " << tally.max_folded
        << ")\n";
}

void print_table(std::ostream& out, const std::string& title, const Tally& tally,
                 std::size_t limit = SIZE_MAX) {
    out << '\n' << title << '\n' << std::string(title.size(), '-') << '\n';
    if (tally.empty()) out << "  none\n";
    for (const auto& [name, n] : ranked(tally, limit))
        out << std::setw(8) << n << "   " << name << '\n';
    print_folded(out, tally);
}

// In the order of the rule names, so one rule's rows stay together.
void print_rules(std::ostream& out, const ReportData& data) {
    std::string title = "Decisions per rule, action and stage";
    out << '\n' << title << '\n' << std::string(title.size(), '-') << '\n';
    if (data.by_rule.empty()) out << "  none\n";
    std::map<std::string_view, std::uint64_t> rows;
    for (const auto& [name, n] : data.by_rule.counts()) rows.emplace(name, n);
    for (const auto& [name, n] : rows) out << std::setw(8) << n << "   " << name << '\n';
    print_folded(out, data.by_rule);
}

}  // namespace

void Tally::add(std::string_view value) {
    if (value.size() > kMaxValueBytes) value = value.substr(0, kMaxValueBytes);
    auto found = counts_.find(std::string(value));
    if (found != counts_.end()) {
        ++found->second;
        return;
    }
    if (counts_.size() >= kMaxValues) fold();
    counts_.emplace(value, 1);
}

// Keeps the most counted half: amortised, each value added pays for one fold step.
void Tally::fold() {
    std::vector<std::uint64_t> all;
    all.reserve(counts_.size());
    for (const auto& entry : counts_) all.push_back(entry.second);
    auto middle = all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2);
    std::nth_element(all.begin(), middle, all.end(), std::greater<>());
    std::uint64_t keep_above = *middle;  // ties at the median go too: at least half is freed
    for (auto it = counts_.begin(); it != counts_.end();) {
        if (it->second > keep_above) {
            ++it;
            continue;
        }
        ++folded_values;
        folded_count += it->second;
        max_folded = std::max(max_folded, it->second);
        it = counts_.erase(it);
    }
}

namespace {

// Reads `file` ("-": stdin), plain or gzip, line by line into `data`.
bool read_file(const std::string& file, ReportData& data, std::string_view ident, std::int64_t now,
               std::ostream& err) {
    gzFile gz = file == "-" ? gzdopen(dup(STDIN_FILENO), "rb") : gzopen(file.c_str(), "rb");
    if (!gz) {
        err << "policy-milter: --report: cannot open " << file << ": " << std::strerror(errno)
            << '\n';
        return false;
    }
    std::string line;
    bool too_long = false;
    char buf[1 << 16];
    int n = 0;
    while ((n = gzread(gz, buf, sizeof buf)) > 0) {
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        while (!chunk.empty()) {
            std::size_t nl = chunk.find('\n');
            std::string_view part = chunk.substr(0, nl);
            if (!too_long && line.size() + part.size() <= kMaxLine)
                line.append(part);
            else
                too_long = true;
            if (nl == std::string_view::npos) break;
            chunk.remove_prefix(nl + 1);
            if (too_long)
                ++data.skipped_long, ++data.lines;
            else
                report_line(data, line, ident, now);
            line.clear();
            too_long = false;
        }
    }
    int code = Z_OK;
    const char* why = n < 0 ? gzerror(gz, &code) : nullptr;
    if (!why && !line.empty() && !too_long) report_line(data, line, ident, now);
    gzclose(gz);
    if (why) err << "policy-milter: --report: " << file << ": " << why << '\n';
    return why == nullptr;
}

}  // namespace

std::optional<DecisionLine> parse_decision_line(std::string_view message) {
    Cursor c(message);
    DecisionLine d;
    std::string_view queue_id = c.until(": ");
    auto id = unescape_log_value(queue_id, LogValue::Token);
    if (queue_id.empty() || !id || !c.literal(": ")) return std::nullopt;
    d.queue_id = std::move(*id);
    if (!parse_client(c, d) || !parse_rule_action(c, d) || !parse_envelope(c, d) ||
        !parse_extras(c, d))
        return std::nullopt;
    return d;
}

std::optional<SyslogLine> parse_syslog_line(std::string_view line, std::int64_t now) {
    SyslogLine out;
    std::string_view rest;
    if (auto t = traditional_time(line, now)) {
        out.time = *t;
        rest = line.substr(16);
    } else if (auto r = rfc3339_time(line)) {
        out.time = r->first;
        rest = line.substr(r->second);
    } else {
        return std::nullopt;
    }
    if (!split_host_ident(rest, out)) return std::nullopt;
    return out;
}

void report_line(ReportData& data, std::string_view line, std::string_view ident,
                 std::int64_t now) {
    ++data.lines;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto parsed = parse_syslog_line(line, now);
    if (!parsed) return;
    auto decision = parse_decision_line(parsed->message);
    bool ours = parsed->ident == ident;
    if (!decision && !ours) return;
    if (!data.first || parsed->time < *data.first) data.first = parsed->time;
    if (!data.last || parsed->time > *data.last) data.last = parsed->time;
    if (decision)
        count_decision(data, *decision);
    else
        count_other(data, parsed->message);
}

void print_report(const ReportData& data, std::ostream& out) {
    out << "policy-milter report\n====================\n";
    if (data.first)
        out << "Time span: " << format_time(*data.first) << " to " << format_time(*data.last)
            << '\n';
    else
        out << "Time span: no lines of policy-milter\n";
    out << "Lines read: " << data.lines << ", decision lines: " << data.decisions;
    if (data.skipped_long) out << ", skipped (over 64 KiB): " << data.skipped_long;
    out << '\n';
    print_rules(out, data);
    print_table(out, "Decisions per action", data.by_action);
    print_table(out, "Decisions per stage", data.by_stage);
    print_table(out, "Reply codes", data.reply_codes);
    print_table(out, "Top refused clients", data.refused_clients, kTop);
    print_table(out, "Top refused senders", data.refused_senders, kTop);
    print_table(out, "Top refused recipients", data.refused_recipients, kTop);
    print_table(out, "Store errors", data.store_errors);
    std::string title = "Reloads";
    out << '\n'
        << title << '\n'
        << std::string(title.size(), '-') << '\n'
        << std::setw(8) << data.reloads_ok << "   ok\n"
        << std::setw(8) << data.reloads_failed << "   failed\n";
}

int run_report(const std::vector<std::string>& files, std::string_view ident, std::ostream& out,
               std::ostream& err) {
    std::vector<std::string> names = files;
    if (names.empty()) names.push_back(kDefaultReportFile);
    ReportData data;
    auto now = static_cast<std::int64_t>(std::time(nullptr));
    bool ok = true;
    for (const auto& name : names) ok = read_file(name, data, ident, now, err) && ok;
    print_report(data, out);
    return ok ? 0 : 1;
}

}  // namespace pm
