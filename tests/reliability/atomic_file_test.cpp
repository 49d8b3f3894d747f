// SPDX-License-Identifier: MIT
// atomic_file's clean-up of temporaries left by killed writers: a dead process's
// "<final>.<pid>.qforge.tmp" goes, a live process's stays (it may still be writing), names that only
// look alike stay, and the final file is never touched.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "qforge/core/atomic_file.hpp"

namespace fs = std::filesystem;
using qforge::atomic_file;

namespace {

void touch(const fs::path& p, const char* text = "partial") { std::ofstream(p) << text; }

std::string cat_path(const std::string& final_path, pid_t pid) {
  return final_path + "." + std::to_string(pid) + atomic_file::temp_suffix;
}

// The pid of a process that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

}  // namespace

TEST_CASE("atomic_file: a new writer removes the temporaries of dead writers only", "[atomic]") {
  const fs::path dir = fs::path(QFORGE_TEST_TMP) / "atomic_stale";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string final_path = (dir / "model.gguf").string();
  touch(final_path, "previous complete file");
  const std::string dead = cat_path(final_path, dead_pid());
  const std::string live = cat_path(final_path, ::getppid());  // our parent is alive
  const std::string other = (dir / "other.gguf.1.qforge.tmp").string();   // another output's
  const std::string odd = (dir / "model.gguf.12x.qforge.tmp").string();   // not a pid
  for (const auto& p : {dead, live, other, odd}) touch(p);

  {
    atomic_file f(final_path);
    CHECK_FALSE(fs::exists(dead));
    CHECK(fs::exists(live));
    CHECK(fs::exists(other));
    CHECK(fs::exists(odd));
    std::ifstream in(final_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text == "previous complete file");  // untouched until commit
    f.write("new", 3);
    f.commit();
  }
  std::ifstream in(final_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "new");
  CHECK(atomic_file::remove_stale_temps(final_path) == 0);
  CHECK(fs::exists(live));
}

TEST_CASE("atomic_file: stale temporaries of a bare file name in the working folder", "[atomic]") {
  const fs::path dir = fs::path(QFORGE_TEST_TMP) / "atomic_stale_cwd";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto old = fs::current_path();
  fs::current_path(dir);
  const std::string dead = cat_path("out.bin", dead_pid());
  touch(dead);
  CHECK(atomic_file::remove_stale_temps("out.bin") == 1);
  CHECK_FALSE(fs::exists(dead));
  fs::current_path(old);
}
