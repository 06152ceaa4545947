#include "tests/testing/fault_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace retryd::testing {
namespace {

// One change to a file since its last sync, with what it replaced: reverting writes `data` back
// at `offset` and sets the size back to `old_size`.
struct Undo {
  int64_t offset = 0;
  std::string data;
  int64_t old_size = 0;
};

// What the VFS knows of one tracked file (by path; shared by every handle of the file).
struct FileState {
  std::string path;
  int64_t size = 0;  // As the VFS's writes left it.
  std::vector<Undo> undo;  // Since the last successful sync, oldest first.
  // Failed syncs of the file so far. Linux (errseq_t, since 4.13) reports a writeback error to
  // every open file description of the file once, at its next fsync: a handle that was open when
  // a sync failed fails its next sync too, instead of answering OK for pages that were dropped.
  int64_t sync_errors = 0;
};

struct FaultFile {
  sqlite3_file base;
  FileState* state;    // Null: untracked (temporary files).
  sqlite3_file* real;  // The wrapped VFS's file, allocated right after this struct.
  int64_t sync_errors_seen;  // state->sync_errors this handle has been told of.
};

constexpr int kFaultFileSize = (sizeof(FaultFile) + 7) & ~7;

struct Vfs {
  sqlite3_vfs vfs;
  sqlite3_vfs* real = nullptr;
  FaultConfig config;

  std::mutex mu;  // Every write, truncate and sync of a tracked file; the file map.
  std::map<std::string, std::unique_ptr<FileState>> files;
  bool powered_off = false;
  int64_t events = 0;  // Writes and syncs of tracked files.
  int64_t grown = 0;   // Bytes the tracked files grew by.
  std::atomic<int64_t> writes{0}, syncs{0}, reads{0}, faults{0};
};

Vfs* g_vfs = nullptr;

FaultFile* Fault(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f); }

// Reads [offset, offset + n) of the real file as it is now, zeros past its end.
std::string PreImage(FaultFile* f, int64_t offset, int64_t n) {
  std::string bytes(static_cast<size_t>(n), '\0');
  if (n > 0) f->real->pMethods->xRead(f->real, bytes.data(), static_cast<int>(n), offset);
  return bytes;
}

// Puts a file back as it was at its last successful sync.
void Revert(FileState& state) {
  if (state.undo.empty()) return;
  const int fd = open(state.path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    for (auto it = state.undo.rbegin(); it != state.undo.rend(); ++it) {
      if (!it->data.empty()) {
        ssize_t unused = pwrite(fd, it->data.data(), it->data.size(), it->offset);
        (void)unused;
      }
      if (ftruncate(fd, it->old_size) != 0) break;
    }
    fsync(fd);
    close(fd);
  }
  state.size = state.undo.front().old_size;
  state.undo.clear();
}

// Under g_vfs->mu.
void CutPowerLocked(bool exit) {
  for (auto& [path, state] : g_vfs->files) Revert(*state);
  g_vfs->powered_off = true;
  if (exit) {
    std::fprintf(stderr, "fault_vfs: power cut after %lld writes and %lld syncs\n",
                 static_cast<long long>(g_vfs->writes.load()),
                 static_cast<long long>(g_vfs->syncs.load()));
    std::fflush(stderr);
    _exit(kPowerCutExitCode);
  }
}

// Counts a write-or-sync event of a tracked file; cuts the power when it is the configured one.
void CountEvent() {
  ++g_vfs->events;
  if (g_vfs->config.powercut_at > 0 && g_vfs->events == g_vfs->config.powercut_at) {
    CutPowerLocked(/*exit=*/true);
  }
}

bool FailsNow(FaultConfig::Fail kind, int64_t count) {
  if (g_vfs->config.fail != kind || g_vfs->config.fail_at != count) return false;
  g_vfs->faults++;
  static constexpr const char* kNames[] = {"none", "write", "sync", "read"};
  std::fprintf(stderr, "fault_vfs: injected a %s error (number %lld)\n",
               kNames[static_cast<int>(kind)], static_cast<long long>(count));
  return true;
}

// ---- sqlite3_io_methods ----

int Close(sqlite3_file* f) {
  const int rc = Fault(f)->real->pMethods->xClose(Fault(f)->real);
  f->pMethods = nullptr;
  return rc;
}

int Read(sqlite3_file* f, void* buf, int n, sqlite3_int64 offset) {
  FaultFile* ff = Fault(f);
  if (ff->state != nullptr) {
    const int64_t count = ++g_vfs->reads;
    if (FailsNow(FaultConfig::Fail::kRead, count)) return SQLITE_IOERR_READ;
  }
  return ff->real->pMethods->xRead(ff->real, buf, n, offset);
}

int Write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 offset) {
  FaultFile* ff = Fault(f);
  if (ff->state == nullptr) return ff->real->pMethods->xWrite(ff->real, buf, n, offset);
  std::lock_guard<std::mutex> lock(g_vfs->mu);
  if (g_vfs->powered_off) return SQLITE_IOERR_WRITE;
  const int64_t count = ++g_vfs->writes;
  CountEvent();
  if (FailsNow(FaultConfig::Fail::kWrite, count)) return SQLITE_IOERR_WRITE;
  FileState& state = *ff->state;
  const int64_t growth = std::max<int64_t>(0, offset + n - state.size);
  if (g_vfs->config.full_after_bytes >= 0 &&
      g_vfs->grown + growth > g_vfs->config.full_after_bytes) {
    if (g_vfs->faults++ == 0) std::fprintf(stderr, "fault_vfs: the disk is full\n");
    return SQLITE_FULL;
  }
  Undo undo;
  undo.offset = offset;
  undo.data = PreImage(ff, offset, std::max<int64_t>(0, std::min<int64_t>(n, state.size - offset)));
  undo.old_size = state.size;
  const int rc = ff->real->pMethods->xWrite(ff->real, buf, n, offset);
  if (rc == SQLITE_OK) {
    state.undo.push_back(std::move(undo));
    state.size += growth;
    g_vfs->grown += growth;
  }
  return rc;
}

int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  FaultFile* ff = Fault(f);
  if (ff->state == nullptr) return ff->real->pMethods->xTruncate(ff->real, size);
  std::lock_guard<std::mutex> lock(g_vfs->mu);
  if (g_vfs->powered_off) return SQLITE_IOERR_TRUNCATE;
  FileState& state = *ff->state;
  Undo undo;
  undo.offset = size;
  undo.data = PreImage(ff, size, std::max<int64_t>(0, state.size - size));
  undo.old_size = state.size;
  const int rc = ff->real->pMethods->xTruncate(ff->real, size);
  if (rc == SQLITE_OK) {
    state.undo.push_back(std::move(undo));
    state.size = size;
  }
  return rc;
}

int Sync(sqlite3_file* f, int flags) {
  FaultFile* ff = Fault(f);
  if (ff->state == nullptr) return ff->real->pMethods->xSync(ff->real, flags);
  std::lock_guard<std::mutex> lock(g_vfs->mu);
  if (g_vfs->powered_off) return SQLITE_IOERR_FSYNC;
  const int64_t count = ++g_vfs->syncs;
  CountEvent();
  if (FailsNow(FaultConfig::Fail::kSync, count)) {
    // The kernel drops the dirty pages of a file whose writeback failed.
    Revert(*ff->state);
    ++ff->state->sync_errors;
    ff->sync_errors_seen = ff->state->sync_errors;
    return SQLITE_IOERR_FSYNC;
  }
  if (ff->sync_errors_seen != ff->state->sync_errors) {
    // Another handle's sync failed since this one last synced: told once, as Linux does.
    ff->sync_errors_seen = ff->state->sync_errors;
    return SQLITE_IOERR_FSYNC;
  }
  const int rc = ff->real->pMethods->xSync(ff->real, flags);
  if (rc == SQLITE_OK) ff->state->undo.clear();
  return rc;
}

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Fault(f)->real->pMethods->xFileSize(Fault(f)->real, size);
}
int Lock(sqlite3_file* f, int level) { return Fault(f)->real->pMethods->xLock(Fault(f)->real, level); }
int Unlock(sqlite3_file* f, int level) {
  return Fault(f)->real->pMethods->xUnlock(Fault(f)->real, level);
}
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Fault(f)->real->pMethods->xCheckReservedLock(Fault(f)->real, out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return Fault(f)->real->pMethods->xFileControl(Fault(f)->real, op, arg);
}
int SectorSize(sqlite3_file* f) { return Fault(f)->real->pMethods->xSectorSize(Fault(f)->real); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Fault(f)->real->pMethods->xDeviceCharacteristics(Fault(f)->real);
}
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Fault(f)->real->pMethods->xShmMap(Fault(f)->real, region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Fault(f)->real->pMethods->xShmLock(Fault(f)->real, offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Fault(f)->real->pMethods->xShmBarrier(Fault(f)->real); }
int ShmUnmap(sqlite3_file* f, int delete_flag) {
  return Fault(f)->real->pMethods->xShmUnmap(Fault(f)->real, delete_flag);
}
int Fetch(sqlite3_file* f, sqlite3_int64 offset, int n, void** out) {
  // No memory-mapped reads: every read goes through Read.
  *out = nullptr;
  return SQLITE_OK;
}
int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) { return SQLITE_OK; }

const sqlite3_io_methods kIoMethods = {
    3,         Close,     Read,        Write,    Truncate, Sync,     FileSize,
    Lock,      Unlock,    CheckReservedLock,     FileControl,        SectorSize,
    DeviceCharacteristics, ShmMap,     ShmLock,  ShmBarrier,         ShmUnmap,
    Fetch,     Unfetch};

// ---- sqlite3_vfs ----

int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  FaultFile* ff = Fault(file);
  ff->base.pMethods = nullptr;
  ff->state = nullptr;
  ff->sync_errors_seen = 0;
  ff->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kFaultFileSize);
  const int rc = g_vfs->real->xOpen(g_vfs->real, name, ff->real, flags, out_flags);
  if (rc != SQLITE_OK) return rc;
  if (ff->real->pMethods == nullptr || ff->real->pMethods->iVersion < 3) {
    if (ff->real->pMethods != nullptr) ff->real->pMethods->xClose(ff->real);
    return SQLITE_CANTOPEN;
  }
  constexpr int kTracked = SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL;
  if (name != nullptr && (flags & kTracked) != 0) {
    std::lock_guard<std::mutex> lock(g_vfs->mu);
    std::unique_ptr<FileState>& state = g_vfs->files[name];
    if (state == nullptr) {
      state = std::make_unique<FileState>();
      state->path = name;
      sqlite3_int64 size = 0;
      ff->real->pMethods->xFileSize(ff->real, &size);
      state->size = size;
    }
    ff->state = state.get();
    ff->sync_errors_seen = state->sync_errors;  // Errors before it was opened are not its own.
  }
  ff->base.pMethods = &kIoMethods;
  return SQLITE_OK;
}

int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  {
    std::lock_guard<std::mutex> lock(g_vfs->mu);
    if (g_vfs->powered_off) return SQLITE_IOERR_DELETE;
    auto it = g_vfs->files.find(name);
    if (it != g_vfs->files.end()) it->second->undo.clear();  // Its deletion is durable.
  }
  return g_vfs->real->xDelete(g_vfs->real, name, sync_dir);
}
int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return g_vfs->real->xAccess(g_vfs->real, name, flags, out);
}
int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return g_vfs->real->xFullPathname(g_vfs->real, name, n, out);
}
void* DlOpen(sqlite3_vfs* vfs, const char* name) { return g_vfs->real->xDlOpen(g_vfs->real, name); }
void DlError(sqlite3_vfs* vfs, int n, char* out) { g_vfs->real->xDlError(g_vfs->real, n, out); }
void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return g_vfs->real->xDlSym(g_vfs->real, handle, symbol);
}
void DlClose(sqlite3_vfs* vfs, void* handle) { g_vfs->real->xDlClose(g_vfs->real, handle); }
int Randomness(sqlite3_vfs* vfs, int n, char* out) {
  return g_vfs->real->xRandomness(g_vfs->real, n, out);
}
int Sleep(sqlite3_vfs* vfs, int micros) { return g_vfs->real->xSleep(g_vfs->real, micros); }
int CurrentTime(sqlite3_vfs* vfs, double* out) {
  return g_vfs->real->xCurrentTime(g_vfs->real, out);
}
int GetLastError(sqlite3_vfs* vfs, int n, char* out) {
  return g_vfs->real->xGetLastError(g_vfs->real, n, out);
}
int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return g_vfs->real->xCurrentTimeInt64(g_vfs->real, out);
}

}  // namespace

absl::StatusOr<FaultConfig> FaultConfig::Parse(absl::string_view text) {
  FaultConfig config;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    const auto& [key, value] = kv;
    int64_t number = 0;
    if (key == "fail") {
      if (value == "write") {
        config.fail = Fail::kWrite;
      } else if (value == "sync") {
        config.fail = Fail::kSync;
      } else if (value == "read") {
        config.fail = Fail::kRead;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("fault config: fail=", value));
      }
    } else if (!absl::SimpleAtoi(value, &number)) {
      return absl::InvalidArgumentError(absl::StrCat("fault config: ", key, "=", value));
    } else if (key == "at") {
      config.fail_at = number;
    } else if (key == "powercut_at") {
      config.powercut_at = number;
    } else if (key == "full_after_bytes") {
      config.full_after_bytes = number;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("fault config: unknown key ", key));
    }
  }
  return config;
}

absl::Status InstallFaultVfs(const FaultConfig& config) {
  if (g_vfs != nullptr) return absl::FailedPreconditionError("the fault VFS is installed already");
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (real == nullptr || real->iVersion < 2) {
    return absl::InternalError("no default SQLite VFS of version 2 or later to wrap");
  }
  auto* v = new Vfs();  // Lives as long as the process (SQLite keeps a pointer).
  v->real = real;
  v->config = config;
  sqlite3_vfs& s = v->vfs;
  std::memset(&s, 0, sizeof(s));
  s.iVersion = 2;
  s.szOsFile = kFaultFileSize + real->szOsFile;
  s.mxPathname = real->mxPathname;
  s.zName = "retryd-fault";
  s.xOpen = Open;
  s.xDelete = Delete;
  s.xAccess = Access;
  s.xFullPathname = FullPathname;
  s.xDlOpen = DlOpen;
  s.xDlError = DlError;
  s.xDlSym = DlSym;
  s.xDlClose = DlClose;
  s.xRandomness = Randomness;
  s.xSleep = Sleep;
  s.xCurrentTime = CurrentTime;
  s.xGetLastError = GetLastError;
  s.xCurrentTimeInt64 = CurrentTimeInt64;
  g_vfs = v;
  const int rc = sqlite3_vfs_register(&s, /*makeDflt=*/1);
  if (rc != SQLITE_OK) return absl::InternalError(absl::StrCat("sqlite3_vfs_register: ", rc));
  return absl::OkStatus();
}

FaultCounts GetFaultCounts() {
  FaultCounts c;
  if (g_vfs == nullptr) return c;
  c.writes = g_vfs->writes.load();
  c.syncs = g_vfs->syncs.load();
  c.reads = g_vfs->reads.load();
  c.faults = g_vfs->faults.load();
  return c;
}

void CutPowerNow(bool exit) {
  if (g_vfs == nullptr) return;
  std::lock_guard<std::mutex> lock(g_vfs->mu);
  CutPowerLocked(exit);
}

}  // namespace retryd::testing
