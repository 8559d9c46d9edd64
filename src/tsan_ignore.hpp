// A scope that hides deliberate, validated racy reads from ThreadSanitizer: a seqlock-style
// optimistic copy whose result is used only after a later check proves it was not torn (the
// queue ring's get). TSan cannot see that check and would report the discarded copies as data
// races. Outside TSan builds the scope is empty.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define MP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MP_TSAN 1
#endif
#endif

#ifdef MP_TSAN
// TSan's dynamic annotations, defined by its runtime.
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#endif

namespace mp::detail {

/// While alive, this thread's memory reads are not checked for races by ThreadSanitizer.
class TsanIgnoreReads {
public:
    // User-provided even when empty, so that a scope variable is not "unused".
    TsanIgnoreReads() noexcept {
#ifdef MP_TSAN
        AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
#endif
    }
    ~TsanIgnoreReads() {
#ifdef MP_TSAN
        AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
    }
    TsanIgnoreReads(const TsanIgnoreReads&) = delete;
    TsanIgnoreReads& operator=(const TsanIgnoreReads&) = delete;
};

}  // namespace mp::detail
