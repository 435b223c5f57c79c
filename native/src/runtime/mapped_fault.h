// What a server says before it dies of a mapped weights file changed under it. Truncating or
// replacing a file that is mapped takes its pages away: the next read of one raises SIGBUS, which
// ends the process (nothing can be served from weights that are gone), and by default with no
// word in the log. A handler names the file and the fix on stderr (the daemon's log), then lets
// the signal do what it did before.
#pragma once
#include <cstddef>
#include <string>

namespace grpst {

/** [base, base + size) maps `path`: a SIGBUS inside it is reported with that name. */
void watch_mapped_range(const void* base, size_t size, const std::string& path);
/** The range was unmapped. */
void unwatch_mapped_range(const void* base);

}  // namespace grpst
