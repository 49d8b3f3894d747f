// SPDX-License-Identifier: MIT
// qforge check AWQ_DIR --target vllm [--tp N] [--capability X.Y]: the serving preflight
// (awq/preflight.hpp). Prints which kernel vLLM would pick and which tensor-parallel sizes load,
// per GPU class, to stdout; exits with status 1 (one error line on stderr) when the checkpoint has
// an error or the requested TP size (1 when none is given) cannot load on the given GPU class.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "qforge/awq/preflight.hpp"

namespace qforge::cli {

namespace {

struct check_args {
  std::string dir, target = "vllm", capability = "8.0";
  std::uint32_t tp = 0;
};

void run_check(const check_args& a) {
  int major = 0, minor = 0;
  if (std::sscanf(a.capability.c_str(), "%d.%d", &major, &minor) != 2 || major < 0 || minor < 0 ||
      minor > 9)
    throw error(error::kind::argument,
                cat("--capability '", a.capability, "': expected X.Y, e.g. 8.0"));
  const int cc = major * 10 + minor;
  std::vector<std::uint32_t> tps = {1, 2, 4, 8};
  if (a.tp != 0 && std::find(tps.begin(), tps.end(), a.tp) == tps.end()) {
    tps.push_back(a.tp);
    std::sort(tps.begin(), tps.end());
  }
  const auto r = awq::check_vllm(a.dir, tps);
  std::fputs(awq::format_vllm_table(r).c_str(), stdout);
  std::fflush(stdout);
  if (cc < 75)
    throw error(error::kind::unsupported, a.dir,
                cat("compute capability ", a.capability, ": vLLM's AWQ kernels need 7.5 or newer"));
  if (!r.model_ok())
    throw error(error::kind::format, a.dir, "vLLM would refuse this checkpoint (errors above)");
  const std::uint32_t want = a.tp == 0 ? 1 : a.tp;
  const auto& l = cc >= 80 ? r.find(want)->ampere : r.find(want)->turing;
  if (!l.loads)
    throw error(error::kind::unsupported, a.dir,
                cat("vLLM cannot load it with tensor parallel size ", want,
                    " on compute capability ", a.capability, ": ", l.reason));
  std::printf("TP %u on compute capability %s: loads with the %s kernel\n", want,
              a.capability.c_str(), l.kernel.c_str());
}

}  // namespace

void register_check(CLI::App& app) {
  auto a = std::make_shared<check_args>();
  auto* cmd = app.add_subcommand(
      "check",
      "Serving preflight: would vLLM load this AWQ folder, with which kernel, at which "
      "tensor-parallel sizes");
  cmd->add_option("dir", a->dir, "AWQ checkpoint folder")->required();
  cmd->add_option("--target", a->target, "Serving engine")
      ->check(CLI::IsMember({"vllm"}))
      ->capture_default_str();
  cmd->add_option("--tp", a->tp, "Tensor-parallel size that must load (exit status 1 otherwise)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--capability", a->capability,
                  "GPU compute capability the exit status judges (8.0+: awq_marlin, 7.5: awq)")
      ->capture_default_str();
  cmd->callback([a] { run_check(*a); });
}

}  // namespace qforge::cli
