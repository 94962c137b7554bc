import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program with `posix_spawn`, resetting the signal mask and
/// dispositions in the child. Foundation's `Process` passes on the parent's
/// mask, in which the Swift runtime's threads block signals such as SIGALRM:
/// a child relying on them (`openssl speed` times itself with alarm(2)) would
/// never stop.
public enum ChildProcess {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The path of the executable `name` on PATH, if installed.
    public static func find(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs `executable` to completion and returns its standard output (and
    /// standard error, if asked; else it is discarded) and exit status.
    public static func run(_ executable: String, _ arguments: [String],
                           captureStandardError: Bool = false) throws -> (output: String, status: Int32) {
        var pipe: [Int32] = [0, 0]
        guard domicile_pipe_cloexec(&pipe) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        let pid = try spawn(executable, arguments, stdout: pipe[1], stderr: captureStandardError ? pipe[1] : nil)
        close(pipe[1])
        var output = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(pipe[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output.append(contentsOf: buffer[0..<count])
        }
        close(pipe[0])
        return (String(decoding: output, as: UTF8.self), wait(pid))
    }

    /// Starts `executable` with the given standard output (or the parent's)
    /// and returns its pid. Standard error goes to /dev/null unless `stderr` is given.
    public static func spawn(_ executable: String, _ arguments: [String], stdout: Int32? = nil,
                      stderr: Int32? = nil, environment: [String: String]? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdout { posix_spawn_file_actions_adddup2(&actions, stdout, STDOUT_FILENO) }
        if let stderr {
            posix_spawn_file_actions_adddup2(&actions, stderr, STDERR_FILENO)
        } else {
            posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        // Every standard signal but SIGKILL and SIGSTOP, whose dispositions
        // cannot be set (glibc's posix_spawn fails the child if asked to).
        var allSignals = sigset_t()
        sigemptyset(&allSignals)
        for signal: Int32 in 1..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&allSignals, signal) }
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environmentStrings = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { environmentStrings.forEach { free($0) } }

        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, environmentStrings)
        guard code == 0 else { throw Failure(description: "cannot start \(executable): \(String(cString: strerror(code)))") }
        return pid
    }

    /// Waits for `pid` and returns its exit status (128 + signal if killed).
    @discardableResult
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

/// A child process whose standard output is read line by line while it runs
/// (test harnesses and `domicile demo` start nodes this way).
public final class RunningProcess: @unchecked Sendable {
    public let pid: pid_t
    // The read end of the child's stdout and the lines read so far; guarded by `lock`.
    private let lock = NSLock()
    private var lines: [String] = []
    private var ended = false
    private var status: Int32?
    private let readerDone = DispatchSemaphore(value: 0)

    /// Starts `executable`; its stdout is collected in the background, its
    /// stderr goes to `stderrPath` (or /dev/null).
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                stderrPath: String? = nil) throws {
        var pipe: [Int32] = [0, 0]
        guard domicile_pipe_cloexec(&pipe) == 0 else { throw ChildProcess.Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        var errorDescriptor: Int32? = nil
        if let stderrPath {
            let descriptor = open(stderrPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw ChildProcess.Failure(description: "\(stderrPath): \(String(cString: strerror(errno)))") }
            errorDescriptor = descriptor
        }
        defer { if let errorDescriptor { close(errorDescriptor) } }
        do {
            pid = try ChildProcess.spawn(executable, arguments, stdout: pipe[1], stderr: errorDescriptor, environment: environment)
        } catch {
            close(pipe[0])
            close(pipe[1])
            throw error
        }
        close(pipe[1])
        let readEnd = pipe[0]
        Thread.detachNewThread { [self] in
            collect(from: readEnd)
            close(readEnd)
            readerDone.signal()
        }
    }

    private func collect(from descriptor: Int32) {
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            pending.append(contentsOf: buffer[0..<count])
            var complete: [String] = []
            while let newline = pending.firstIndex(of: 0x0A) {
                complete.append(String(decoding: pending[..<newline], as: UTF8.self))
                pending.removeSubrange(...newline)
            }
            if !complete.isEmpty {
                lock.lock()
                lines.append(contentsOf: complete)
                lock.unlock()
            }
        }
        lock.lock()
        // A last line without a newline is still a line.
        if !pending.isEmpty { lines.append(String(decoding: pending, as: UTF8.self)) }
        ended = true
        lock.unlock()
    }

    /// Every complete line printed so far.
    public var output: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    /// Waits up to `timeout` seconds for a line satisfying `predicate`.
    public func waitForLine(timeout: Double, where predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            lock.lock()
            let found = lines.first(where: predicate)
            let finished = ended
            lock.unlock()
            if let found { return found }
            if finished { return nil }
            usleep(10_000)
        }
        return nil
    }

    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for the process to exit and for its output to be read; returns
    /// the exit status (128 + signal if killed).
    @discardableResult
    public func wait() -> Int32 {
        lock.lock()
        if let status {
            lock.unlock()
            return status
        }
        lock.unlock()
        let result = ChildProcess.wait(pid)
        readerDone.wait()
        lock.lock()
        status = result
        lock.unlock()
        return result
    }
}
