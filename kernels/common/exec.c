/* kernels/common/exec.c — failure reports of the kernel entry points
 * (exec.h): format once, hand the text to the caller's sink. */
#include <stdarg.h>
#include <stdio.h>

#include "common/exec.h"

deco_status_t deco_exec_fail(const deco_exec_t *exec, deco_status_t status, const char *fmt, ...) {
  if (exec == NULL || exec->on_error == NULL) return status;
  char msg[DECO_EXEC_MESSAGE_CAPACITY];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  exec->on_error(exec->error_user, status, msg);
  return status;
}
