package process

import "github.com/dais-dev/dais/server/config"

// SchedulerOptions are the pool settings of the [Scheduler] section
// (server defaults); per-content overrides (min_processes, max_processes,
// max_conns_per_process, idle_timeout, init_timeout) are applied over them
// by the caller, then Name, Launch, LogDir and Logger are set.
func SchedulerOptions(s config.Scheduler) Options {
	return Options{
		Min:         s.MinProcesses,
		Max:         s.MaxProcesses,
		IdleTimeout: s.IdleTimeout.Std(),
		InitTimeout: s.InitTimeout.Std(),
	}
}
