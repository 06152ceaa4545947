// Names the calling thread, so that `top -H`, `perf` and core dumps tell retryd's threads apart.
#ifndef RETRYD_SERVER_UTIL_THREAD_NAME_H_
#define RETRYD_SERVER_UTIL_THREAD_NAME_H_

#include <pthread.h>

#include <string>

namespace retryd {

// Linux keeps at most 15 characters of a thread's name; longer names are cut.
inline void NameThisThread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace retryd

#endif  // RETRYD_SERVER_UTIL_THREAD_NAME_H_
