/* tests/gpu/gpu_main.c — main() of the GPU suites: exit 77 (ctest "Not Run")
 * when no CUDA device is usable, else run the Criterion tests. The device is
 * probed in a child process so that this process never initialises CUDA
 * before Criterion forks its workers.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deco/core.h"

static int probe_device_count(void) {
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    int n = deco_cuda_device_count();
    _exit(n > 100 ? 100 : n);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status)) return 0;
  return WEXITSTATUS(status);
}

int main(int argc, char *argv[]) {
  if (probe_device_count() == 0) {
    fprintf(stderr, "no CUDA device: GPU suite not run\n");
    return 77;
  }
  struct criterion_test_set *tests = criterion_initialize();
  int result = 0;
  if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
  criterion_finalize(tests);
  return result;
}
