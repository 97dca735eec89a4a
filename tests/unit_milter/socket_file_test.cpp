// SPDX-License-Identifier: BSD-2-Clause
// The unix socket's file (milter/socket_file): which directories may hold it, and that
// its mode and owner change, and its removal at exit happens, only on the socket the
// daemon made: never through a symlink, a hard link or a file swapped in. Each case is
// set up deterministically here; tests/protocol (SocketFile.*) races a real start.
// Tests that change owners need root and are skipped otherwise.
#include "milter/socket_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace pm {
namespace {

class SocketFileTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string pattern = ::testing::TempDir() + "pm-socket-file-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        top_ = pattern;
        ASSERT_EQ(::chmod(top_.c_str(), 0755), 0);
        dir_ = top_ + "/run";
        ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
        sock_ = dir_ + "/milter.sock";
        if (passwd* pw = ::getpwnam("nobody")) {
            nobody_uid_ = pw->pw_uid;
            nobody_gid_ = pw->pw_gid;
        }
    }
    void TearDown() override {
        remove_own_socket();  // forget this test's socket
        for (int fd : fds_) ::close(fd);
        std::error_code ec;
        std::filesystem::remove_all(top_, ec);
    }

    // A listening unix socket bound at `path`, with this umask, as libmilter makes it.
    void bind_socket(const std::string& path, mode_t mode = 0660) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        fds_.push_back(fd);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
        mode_t old = ::umask(~mode & 0777);
        int bound = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::umask(old);
        ASSERT_EQ(bound, 0) << std::strerror(errno);
        ASSERT_EQ(::listen(fd, 1), 0);
    }

    std::string file(const std::string& name, mode_t mode) {
        std::string path = top_ + "/" + name;
        std::ofstream(path) << "precious\n";
        ::chmod(path.c_str(), mode);
        return path;
    }

    static struct stat lstat_of(const std::string& path) {
        struct stat st {};
        EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
        return st;
    }

    bool root() const { return ::geteuid() == 0 && nobody_uid_ != 0; }

    std::string top_, dir_, sock_;
    uid_t nobody_uid_ = 0;
    gid_t nobody_gid_ = 0;
    std::vector<int> fds_;
};

// --- the directory -----------------------------------------------------------------------

TEST_F(SocketFileTest, DirectoryOfRootOrTheDaemonsUserWritableOnlyByItsOwnerIsSafe) {
    EXPECT_EQ(socket_directory_problem(sock_, ::geteuid()), std::nullopt);
    ASSERT_EQ(::chmod(dir_.c_str(), 0750), 0);
    EXPECT_EQ(socket_directory_problem(sock_, ::geteuid()), std::nullopt);
    ASSERT_EQ(::chmod(dir_.c_str(), 0710), 0);
    EXPECT_EQ(socket_directory_problem(sock_, ::geteuid()), std::nullopt);
    if (root()) {
        ASSERT_EQ(::chown(dir_.c_str(), nobody_uid_, 0), 0);
        EXPECT_EQ(socket_directory_problem(sock_, nobody_uid_), std::nullopt);
    }
}

TEST_F(SocketFileTest, DirectoryWritableByOthersOrItsGroupIsUnsafe) {
    for (mode_t mode : {0777, 01777, 0757, 0770, 01770}) {
        ASSERT_EQ(::chmod(dir_.c_str(), mode), 0);
        auto problem = socket_directory_problem(sock_, ::geteuid());
        ASSERT_NE(problem, std::nullopt) << std::oct << mode;
        EXPECT_NE(problem->find("unsafe socket directory " + dir_ + ": writable by "),
                  std::string::npos)
            << *problem;
    }
}

TEST_F(SocketFileTest, DirectoryOfAnotherUserIsUnsafe) {
    if (!root()) GTEST_SKIP() << "needs root and the user nobody";
    ASSERT_EQ(::chown(dir_.c_str(), nobody_uid_, nobody_gid_), 0);
    auto problem = socket_directory_problem(sock_, 0);  // the daemon stays root
    ASSERT_NE(problem, std::nullopt);
    EXPECT_NE(problem->find("belongs to uid " + std::to_string(nobody_uid_)), std::string::npos);
}

TEST_F(SocketFileTest, DirectoryAboveThatOthersCanWriteIsUnsafeUnlessSticky) {
    // top_/open (0777) holds the socket's directory: anyone could rename it away and put
    // their own in its place.
    std::string open = top_ + "/open", inner = open + "/run";
    ASSERT_EQ(::mkdir(open.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(inner.c_str(), 0755), 0);
    ASSERT_EQ(::chmod(open.c_str(), 0777), 0);
    auto problem = socket_directory_problem(inner + "/milter.sock", ::geteuid());
    ASSERT_NE(problem, std::nullopt);
    EXPECT_NE(problem->find(open + ", above the socket,: writable by every user"),
              std::string::npos)
        << *problem;
    // Sticky, as /tmp: nobody else can rename or remove what is in it.
    ASSERT_EQ(::chmod(open.c_str(), 01777), 0);
    EXPECT_EQ(socket_directory_problem(inner + "/milter.sock", ::geteuid()), std::nullopt);
}

TEST_F(SocketFileTest, SymlinksOnTheWayAreResolvedAndTheirTargetsChecked) {
    std::string link = top_ + "/link";
    ASSERT_EQ(::symlink(dir_.c_str(), link.c_str()), 0);
    EXPECT_EQ(socket_directory_problem(link + "/milter.sock", ::geteuid()), std::nullopt);
    ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
    auto problem = socket_directory_problem(link + "/milter.sock", ::geteuid());
    ASSERT_NE(problem, std::nullopt);
    EXPECT_NE(problem->find("socket directory " + dir_ + ": writable"), std::string::npos)
        << *problem;
}

TEST_F(SocketFileTest, MissingDirectoryIsLeftToTheBind) {
    EXPECT_EQ(socket_directory_problem(top_ + "/none/milter.sock", ::geteuid()), std::nullopt);
}

// --- the socket file ----------------------------------------------------------------------

TEST_F(SocketFileTest, ItsOwnSocketGetsModeAndOwner) {
    bind_socket(sock_, 0600);
    uid_t uid = root() ? nobody_uid_ : static_cast<uid_t>(-1);
    gid_t gid = root() ? nobody_gid_ : static_cast<gid_t>(-1);
    EXPECT_EQ(secure_socket_file(sock_, 0660, uid, gid), std::nullopt);
    struct stat st = lstat_of(sock_);
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    if (root()) {
        EXPECT_EQ(st.st_uid, nobody_uid_);
        EXPECT_EQ(st.st_gid, nobody_gid_);
    }
}

// The audit's attack: a symlink where the socket goes, to a file of root's. The old code
// chmodded and chowned (as root) the file it pointed to.
TEST_F(SocketFileTest, SymlinkToAFileIsRefusedAndTheFileLeftAlone) {
    std::string target = file("shadow", 0600);
    ASSERT_EQ(::symlink(target.c_str(), sock_.c_str()), 0);
    struct stat before = lstat_of(target);
    auto problem = secure_socket_file(sock_, 0666, root() ? nobody_uid_ : static_cast<uid_t>(-1),
                                      root() ? nobody_gid_ : static_cast<gid_t>(-1));
    ASSERT_NE(problem, std::nullopt);
    EXPECT_EQ(*problem, "socket " + sock_ + ": a symlink, not the socket just created");
    struct stat after = lstat_of(target);
    EXPECT_EQ(after.st_mode, before.st_mode);
    EXPECT_EQ(after.st_uid, before.st_uid);
    EXPECT_EQ(after.st_gid, before.st_gid);
    EXPECT_TRUE(S_ISLNK(lstat_of(sock_).st_mode));
}

TEST_F(SocketFileTest, SymlinkToASocketIsRefusedAndTheSocketLeftAlone) {
    std::string other = top_ + "/other.sock";
    bind_socket(other, 0600);
    ASSERT_EQ(::symlink(other.c_str(), sock_.c_str()), 0);
    EXPECT_NE(secure_socket_file(sock_, 0666, static_cast<uid_t>(-1), static_cast<gid_t>(-1)),
              std::nullopt);
    EXPECT_EQ(lstat_of(other).st_mode & 07777, 0600u);
}

TEST_F(SocketFileTest, RegularFileIsRefused) {
    std::string path = dir_ + "/milter.sock";
    std::ofstream(path) << "x";
    ::chmod(path.c_str(), 0600);
    auto problem = secure_socket_file(sock_, 0666, static_cast<uid_t>(-1), static_cast<gid_t>(-1));
    ASSERT_NE(problem, std::nullopt);
    EXPECT_NE(problem->find("not a socket"), std::string::npos);
    EXPECT_EQ(lstat_of(sock_).st_mode & 07777, 0600u);
}

// A hard link to another program's socket (fs.protected_hardlinks lets anyone who may read
// and write a file link it) has two names: not the one just bound.
TEST_F(SocketFileTest, HardLinkedSocketIsRefused) {
    std::string other = top_ + "/other.sock";
    bind_socket(other, 0666);
    ASSERT_EQ(::link(other.c_str(), sock_.c_str()), 0);
    auto problem = secure_socket_file(sock_, 0660, static_cast<uid_t>(-1), static_cast<gid_t>(-1));
    ASSERT_NE(problem, std::nullopt);
    EXPECT_NE(problem->find("has 2 links"), std::string::npos) << *problem;
    EXPECT_EQ(lstat_of(other).st_mode & 07777, 0666u);
}

TEST_F(SocketFileTest, SocketOfAnotherUserIsRefused) {
    if (!root()) GTEST_SKIP() << "needs root and the user nobody";
    bind_socket(sock_, 0600);
    ASSERT_EQ(::chown(sock_.c_str(), nobody_uid_, nobody_gid_), 0);
    auto problem = secure_socket_file(sock_, 0666, 0, 0);
    ASSERT_NE(problem, std::nullopt);
    EXPECT_NE(problem->find("belongs to uid " + std::to_string(nobody_uid_)), std::string::npos);
    struct stat st = lstat_of(sock_);
    EXPECT_EQ(st.st_uid, nobody_uid_);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

// --- removal at exit ----------------------------------------------------------------------

TEST_F(SocketFileTest, RemovesItsOwnSocketOnce) {
    bind_socket(sock_);
    ASSERT_EQ(secure_socket_file(sock_, 0660, static_cast<uid_t>(-1), static_cast<gid_t>(-1)),
              std::nullopt);
    EXPECT_TRUE(remove_own_socket());
    struct stat st {};
    EXPECT_NE(::lstat(sock_.c_str(), &st), 0);
    bind_socket(sock_);  // a new instance's
    EXPECT_FALSE(remove_own_socket()) << "a second removal";
    EXPECT_EQ(::lstat(sock_.c_str(), &st), 0);
}

TEST_F(SocketFileTest, LeavesASocketThatTookThePathMeanwhile) {
    bind_socket(sock_);
    ASSERT_EQ(secure_socket_file(sock_, 0660, static_cast<uid_t>(-1), static_cast<gid_t>(-1)),
              std::nullopt);
    ASSERT_EQ(::unlink(sock_.c_str()), 0);
    bind_socket(sock_);  // another instance, started meanwhile
    ino_t theirs = lstat_of(sock_).st_ino;
    EXPECT_FALSE(remove_own_socket());
    EXPECT_EQ(lstat_of(sock_).st_ino, theirs);
}

TEST_F(SocketFileTest, LeavesASymlinkThatTookThePathMeanwhile) {
    bind_socket(sock_);
    ASSERT_EQ(secure_socket_file(sock_, 0660, static_cast<uid_t>(-1), static_cast<gid_t>(-1)),
              std::nullopt);
    std::string target = file("shadow", 0600);
    std::string link = dir_ + "/.swap";
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    ASSERT_EQ(::rename(link.c_str(), sock_.c_str()), 0);
    EXPECT_FALSE(remove_own_socket());
    EXPECT_TRUE(S_ISLNK(lstat_of(sock_).st_mode));
    EXPECT_EQ(lstat_of(target).st_mode & 07777, 0600u);
}

// libmilter's own unlink() of the socket at exit (mi_closener) goes through the same
// check: this binary is linked with -Wl,--wrap=unlink like the daemon.
TEST_F(SocketFileTest, UnlinkOfTheSocketPathChecksItIsStillItsOwn) {
    bind_socket(sock_);
    ASSERT_EQ(secure_socket_file(sock_, 0660, static_cast<uid_t>(-1), static_cast<gid_t>(-1)),
              std::nullopt);
    ASSERT_EQ(::unlinkat(AT_FDCWD, sock_.c_str(), 0), 0);  // not wrapped: the test's own
    bind_socket(sock_);
    ino_t theirs = lstat_of(sock_).st_ino;
    EXPECT_NE(::unlink(sock_.c_str()), 0);
    EXPECT_EQ(lstat_of(sock_).st_ino, theirs);
    std::string other = dir_ + "/other";
    std::ofstream(other) << "x";
    EXPECT_EQ(::unlink(other.c_str()), 0) << "any other path is unlinked as usual";
}

}  // namespace
}  // namespace pm
