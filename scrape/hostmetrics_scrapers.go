package scrape

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"golang.org/x/sys/unix"
)

// The Collector's metric names, units, types and default switches
// (hostmetricsreceiver metadata.yaml).
var (
	cpuDefs = map[string]hmMetricDef{
		"system.cpu.time":           {"s", mkCounter, true},
		"system.cpu.utilization":    {"1", mkGauge, false},
		"system.cpu.logical.count":  {"{cpu}", mkUpDown, false},
		"system.cpu.physical.count": {"{cpu}", mkUpDown, false},
		"system.cpu.frequency":      {"Hz", mkGauge, false},
	}
	loadDefs = map[string]hmMetricDef{
		"system.cpu.load_average.1m":  {"{thread}", mkGauge, true},
		"system.cpu.load_average.5m":  {"{thread}", mkGauge, true},
		"system.cpu.load_average.15m": {"{thread}", mkGauge, true},
	}
	memoryDefs = map[string]hmMetricDef{
		"system.memory.usage":       {"By", mkUpDown, true},
		"system.memory.utilization": {"1", mkGauge, false},
		"system.memory.limit":       {"By", mkUpDown, false},
	}
	pagingDefs = map[string]hmMetricDef{
		"system.paging.usage":       {"By", mkUpDown, true},
		"system.paging.operations":  {"{operations}", mkCounter, true},
		"system.paging.faults":      {"{faults}", mkCounter, true},
		"system.paging.utilization": {"1", mkGauge, false},
	}
	filesystemDefs = map[string]hmMetricDef{
		"system.filesystem.usage":        {"By", mkUpDown, true},
		"system.filesystem.inodes.usage": {"{inodes}", mkUpDown, true},
		"system.filesystem.utilization":  {"1", mkGauge, false},
	}
	diskDefs = map[string]hmMetricDef{
		"system.disk.io":                 {"By", mkCounter, true},
		"system.disk.operations":         {"{operations}", mkCounter, true},
		"system.disk.io_time":            {"s", mkCounter, true},
		"system.disk.operation_time":     {"s", mkCounter, true},
		"system.disk.weighted_io_time":   {"s", mkCounter, true},
		"system.disk.pending_operations": {"{operations}", mkUpDown, true},
		"system.disk.merged":             {"{operations}", mkCounter, true},
	}
	networkDefs = map[string]hmMetricDef{
		"system.network.packets":         {"{packets}", mkCounter, true},
		"system.network.dropped":         {"{packets}", mkCounter, true},
		"system.network.errors":          {"{errors}", mkCounter, true},
		"system.network.io":              {"By", mkCounter, true},
		"system.network.connections":     {"{connections}", mkUpDown, true},
		"system.network.conntrack.count": {"{entries}", mkUpDown, false},
		"system.network.conntrack.max":   {"{entries}", mkUpDown, false},
	}
	processesDefs = map[string]hmMetricDef{
		"system.processes.count":   {"{processes}", mkUpDown, true},
		"system.processes.created": {"{processes}", mkCounter, true},
	}
	processDefs = map[string]hmMetricDef{
		"process.cpu.time":              {"s", mkCounter, true},
		"process.cpu.utilization":       {"1", mkGauge, false},
		"process.memory.usage":          {"By", mkUpDown, true},
		"process.memory.virtual":        {"By", mkUpDown, true},
		"process.memory.utilization":    {"1", mkGauge, false},
		"process.disk.io":               {"By", mkCounter, true},
		"process.disk.operations":       {"{operations}", mkCounter, false},
		"process.threads":               {"{threads}", mkUpDown, false},
		"process.open_file_descriptors": {"{count}", mkUpDown, false},
		"process.paging.faults":         {"{faults}", mkCounter, false},
		"process.context_switches":      {"{count}", mkCounter, false},
		"process.uptime":                {"s", mkGauge, false},
	}
)

// userHZ is the kernel's clock tick for /proc/stat on every Linux port
// Go supports.
const userHZ = 100.0

func (h *hostCollector) cpu(s *hmSet, stat procfs.Stat) error {
	states := func(c procfs.CPUStat) [8]float64 {
		return [8]float64{c.User, c.System, c.Idle, c.IRQ, c.Nice, c.SoftIRQ, c.Steal, c.Iowait}
	}
	names := [8]string{"user", "system", "idle", "interrupt", "nice", "softirq", "steal", "wait"}
	for i := int64(0); i < int64(len(stat.CPU)); i++ {
		c, ok := stat.CPU[i]
		if !ok {
			continue
		}
		cpu := "cpu" + strconv.FormatInt(i, 10)
		cur := states(c)
		for j, v := range cur {
			s.double("system.cpu.time", v, "cpu", cpu, "state", names[j])
		}
		if p, ok := h.prevCPU[i]; ok {
			prev := states(p)
			var total float64
			for j := range cur {
				total += cur[j] - prev[j]
			}
			if total > 0 {
				for j := range cur {
					s.double("system.cpu.utilization", (cur[j]-prev[j])/total, "cpu", cpu, "state", names[j])
				}
			}
		}
	}
	s.int("system.cpu.logical.count", int64(len(stat.CPU)))
	if s.on["system.cpu.physical.count"] || s.on["system.cpu.frequency"] {
		infos, err := h.proc.CPUInfo()
		if err != nil {
			return fmt.Errorf("read cpuinfo: %w", err)
		}
		cores := map[string]bool{}
		for _, ci := range infos {
			cores[ci.PhysicalID+"/"+ci.CoreID] = true
			s.double("system.cpu.frequency", ci.CPUMHz*1e6, "cpu", "cpu"+strconv.FormatUint(uint64(ci.Processor), 10))
		}
		s.int("system.cpu.physical.count", int64(len(cores)))
	}
	h.prevCPU = stat.CPU
	return nil
}

func (h *hostCollector) load(s *hmSet) error {
	l, err := h.proc.LoadAvg()
	if err != nil {
		return fmt.Errorf("read loadavg: %w", err)
	}
	s.double("system.cpu.load_average.1m", l.Load1)
	s.double("system.cpu.load_average.5m", l.Load5)
	s.double("system.cpu.load_average.15m", l.Load15)
	return nil
}

func u64(p *uint64) int64 {
	if p == nil {
		return 0
	}
	return int64(*p) * 1024
}

func (h *hostCollector) memory(s *hmSet) error {
	mi, err := h.proc.Meminfo()
	if err != nil {
		return fmt.Errorf("read meminfo: %w", err)
	}
	total := u64(mi.MemTotal)
	if total <= 0 {
		return fmt.Errorf("read meminfo: no MemTotal")
	}
	free, buf, cached := u64(mi.MemFree), u64(mi.Buffers), u64(mi.Cached)
	srec, sunrec := u64(mi.SReclaimable), u64(mi.SUnreclaim)
	// The states partition MemTotal: used is what no other state holds.
	used := max(total-free-buf-cached-srec-sunrec, 0)
	for _, st := range []struct {
		name string
		v    int64
	}{{"used", used}, {"free", free}, {"buffered", buf}, {"cached", cached}, {"slab_reclaimable", srec}, {"slab_unreclaimable", sunrec}} {
		s.int("system.memory.usage", st.v, "state", st.name)
		s.double("system.memory.utilization", float64(st.v)/float64(total), "state", st.name)
	}
	s.int("system.memory.limit", total)
	return nil
}

// readKV reads a "name value" file such as /proc/vmstat; procfs has no
// parser for it.
func readKV(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseKV(f)
}

// parseKV parses "name value" lines; lines that do not fit are skipped.
func parseKV(r io.Reader) (map[string]int64, error) {
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}

func (h *hostCollector) paging(s *hmSet) error {
	swaps, err := h.proc.Swaps()
	if err != nil {
		return fmt.Errorf("read swaps: %w", err)
	}
	for _, sw := range swaps {
		used, size := int64(sw.Used)*1024, int64(sw.Size)*1024
		s.int("system.paging.usage", used, "device", sw.Filename, "state", "used")
		s.int("system.paging.usage", size-used, "device", sw.Filename, "state", "free")
		if size > 0 {
			s.double("system.paging.utilization", float64(used)/float64(size), "device", sw.Filename, "state", "used")
			s.double("system.paging.utilization", float64(size-used)/float64(size), "device", sw.Filename, "state", "free")
		}
	}
	vm, err := readKV(filepath.Join(h.root, "proc", "vmstat"))
	if err != nil {
		return fmt.Errorf("read vmstat: %w", err)
	}
	s.int("system.paging.operations", vm["pswpin"], "direction", "page_in", "type", "major")
	s.int("system.paging.operations", vm["pswpout"], "direction", "page_out", "type", "major")
	s.int("system.paging.operations", vm["pgpgin"], "direction", "page_in", "type", "minor")
	s.int("system.paging.operations", vm["pgpgout"], "direction", "page_out", "type", "minor")
	s.int("system.paging.faults", vm["pgmajfault"], "type", "major")
	s.int("system.paging.faults", vm["pgfault"]-vm["pgmajfault"], "type", "minor")
	return nil
}

// virtualFSTypes reads the "nodev" types of /proc/filesystems: as in
// the Collector, they are skipped unless include_virtual_filesystems.
func (h *hostCollector) virtualFSTypes() map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(h.root, "proc", "filesystems"))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		if t, ok := strings.CutPrefix(l, "nodev"); ok {
			out[strings.TrimSpace(t)] = true
		}
	}
	return out
}

func (h *hostCollector) mounts() ([]*procfs.MountInfo, error) {
	ms, err := h.proc.GetProcMounts(1)
	if err == nil {
		return ms, nil
	}
	ms, err2 := h.proc.GetMounts()
	if err2 != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return ms, nil
}

func (h *hostCollector) filesystem(s *hmSet) error {
	ms, err := h.mounts()
	if err != nil {
		return err
	}
	virt := map[string]bool{}
	if !h.cfg.Scrapers.Filesystem.IncludeVirtualFS {
		virt = h.virtualFSTypes()
	}
	var firstErr error
	for _, m := range ms {
		if virt[m.FSType] || !h.filt.fsType.keep(m.FSType) || !h.filt.fsMount.keep(m.MountPoint) || !h.filt.fsDevice.keep(m.Source) {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(h.root, m.MountPoint), &st); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("statfs %s: %w", m.MountPoint, err)
			}
			continue
		}
		mode := "rw"
		if _, ro := m.Options["ro"]; ro {
			mode = "ro"
		}
		bs := int64(st.Bsize)
		used := (int64(st.Blocks) - int64(st.Bfree)) * bs
		free := int64(st.Bavail) * bs
		reserved := (int64(st.Bfree) - int64(st.Bavail)) * bs
		attrs := func(state string) []string {
			return []string{"device", m.Source, "mode", mode, "mountpoint", m.MountPoint, "type", m.FSType, "state", state}
		}
		s.int("system.filesystem.usage", used, attrs("used")...)
		s.int("system.filesystem.usage", free, attrs("free")...)
		s.int("system.filesystem.usage", reserved, attrs("reserved")...)
		s.int("system.filesystem.inodes.usage", int64(st.Files)-int64(st.Ffree), attrs("used")...)
		s.int("system.filesystem.inodes.usage", int64(st.Ffree), attrs("free")...)
		if used+free > 0 {
			s.double("system.filesystem.utilization", float64(used)/float64(used+free),
				"device", m.Source, "mode", mode, "mountpoint", m.MountPoint, "type", m.FSType)
		}
	}
	return firstErr
}

func (h *hostCollector) disk(s *hmSet) error {
	ds, err := h.block.ProcDiskstats()
	if err != nil {
		return fmt.Errorf("read diskstats: %w", err)
	}
	for _, d := range ds {
		dev := d.DeviceName
		if !h.filt.disk.keep(dev) {
			continue
		}
		s.int("system.disk.io", int64(d.ReadSectors)*512, "device", dev, "direction", "read")
		s.int("system.disk.io", int64(d.WriteSectors)*512, "device", dev, "direction", "write")
		s.int("system.disk.operations", int64(d.ReadIOs), "device", dev, "direction", "read")
		s.int("system.disk.operations", int64(d.WriteIOs), "device", dev, "direction", "write")
		s.double("system.disk.io_time", float64(d.IOsTotalTicks)/1000, "device", dev)
		s.double("system.disk.operation_time", float64(d.ReadTicks)/1000, "device", dev, "direction", "read")
		s.double("system.disk.operation_time", float64(d.WriteTicks)/1000, "device", dev, "direction", "write")
		s.double("system.disk.weighted_io_time", float64(d.WeightedIOTicks)/1000, "device", dev)
		s.int("system.disk.pending_operations", int64(d.IOsInProgress), "device", dev)
		s.int("system.disk.merged", int64(d.ReadMerges), "device", dev, "direction", "read")
		s.int("system.disk.merged", int64(d.WriteMerges), "device", dev, "direction", "write")
	}
	return nil
}

// tcpStates are the kernel's TCP state numbers (include/net/tcp_states.h)
// in the Collector's spelling.
var tcpStates = [...]string{1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT_1", 5: "FIN_WAIT_2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}

func (h *hostCollector) network(s *hmSet) error {
	nd, err := h.proc.NetDev()
	if err != nil {
		return fmt.Errorf("read net/dev: %w", err)
	}
	for name, l := range nd {
		if !h.filt.network.keep(name) {
			continue
		}
		for _, p := range []struct {
			metric string
			rx, tx uint64
		}{
			{"system.network.packets", l.RxPackets, l.TxPackets},
			{"system.network.dropped", l.RxDropped, l.TxDropped},
			{"system.network.errors", l.RxErrors, l.TxErrors},
			{"system.network.io", l.RxBytes, l.TxBytes},
		} {
			s.int(p.metric, int64(p.rx), "device", name, "direction", "receive")
			s.int(p.metric, int64(p.tx), "device", name, "direction", "transmit")
		}
	}
	if s.on["system.network.connections"] {
		counts := map[string]int64{}
		for _, st := range tcpStates {
			if st != "" {
				counts[st] = 0
			}
		}
		for _, read := range []func() (procfs.NetTCP, error){h.proc.NetTCP, h.proc.NetTCP6} {
			lines, err := read()
			if err != nil {
				if os.IsNotExist(err) {
					continue
				}
				return fmt.Errorf("read net/tcp: %w", err)
			}
			for _, l := range lines {
				if l.St < uint64(len(tcpStates)) && tcpStates[l.St] != "" {
					counts[tcpStates[l.St]]++
				}
			}
		}
		for st, n := range counts {
			s.int("system.network.connections", n, "protocol", "tcp", "state", st)
		}
	}
	if s.on["system.network.conntrack.count"] || s.on["system.network.conntrack.max"] {
		for metric, file := range map[string]string{"system.network.conntrack.count": "nf_conntrack_count", "system.network.conntrack.max": "nf_conntrack_max"} {
			b, err := os.ReadFile(filepath.Join(h.root, "proc", "sys", "net", "netfilter", file))
			if err != nil {
				continue
			}
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				s.int(metric, n)
			}
		}
	}
	return nil
}

// processes emits one resource per process, as the Collector does.
func (h *hostCollector) processes(md pmetric.Metrics, now time.Time, ts pcommon.Timestamp) error {
	pc := h.cfg.Scrapers.Process
	mute := func(flag bool) bool { return flag || pc.MuteProcessAllErrors }
	on := h.on["process"]
	procs, err := h.proc.AllProcs()
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	var memTotal int64
	if on["process.memory.utilization"] {
		if mi, err := h.proc.Meminfo(); err == nil {
			memTotal = u64(mi.MemTotal)
		}
	}
	stat, _ := h.proc.Stat()
	boot := time.Unix(int64(stat.BootTime), 0)
	dt := now.Sub(h.prevAt).Seconds()
	cur := make(map[int]procSample, len(procs))
	owners := map[string]string{} // uid -> user name, for this collection
	var errs []string
	for _, p := range procs {
		ps, err := p.Stat()
		if err != nil {
			continue // the process exited
		}
		exe, exeErr := p.Executable()
		name := filepath.Base(exe)
		if exeErr != nil || exe == "" {
			if !mute(pc.MuteProcessExeError) && exeErr != nil {
				errs = append(errs, fmt.Sprintf("pid %d: read exe: %v", p.PID, exeErr))
			}
			name = ps.Comm
			if name == "" && !mute(pc.MuteProcessNameError) {
				errs = append(errs, fmt.Sprintf("pid %d: no name", p.PID))
			}
		}
		if !h.filt.process.keep(name) {
			continue
		}
		rm := md.ResourceMetrics().AppendEmpty()
		ra := rm.Resource().Attributes()
		ra.PutInt("process.pid", int64(p.PID))
		ra.PutInt("process.parent_pid", int64(ps.PPID))
		ra.PutStr("process.executable.name", name)
		ra.PutStr("process.executable.path", exe)
		if args, err := p.CmdLine(); err == nil && len(args) > 0 {
			ra.PutStr("process.command", args[0])
			ra.PutStr("process.command_line", strings.Join(args, " "))
		}
		st, stErr := p.NewStatus()
		if stErr == nil {
			uid := strconv.FormatUint(st.UIDs[0], 10)
			owner, ok := owners[uid]
			if !ok {
				if u, err := user.LookupId(uid); err == nil {
					owner = u.Username
				} else if !mute(pc.MuteProcessUserError) {
					errs = append(errs, fmt.Sprintf("pid %d: look up user %s: %v", p.PID, uid, err))
				}
				owners[uid] = owner
			}
			if owner != "" {
				ra.PutStr("process.owner", owner)
			}
		}
		startTicks := ps.Starttime
		start := pcommon.NewTimestampFromTime(boot.Add(time.Duration(float64(startTicks) / userHZ * float64(time.Second))))
		s := newHMSet(rm, hmScopePrefix+"processscraper", processDefs, on, start, ts)
		user, sys := float64(ps.UTime)/userHZ, float64(ps.STime)/userHZ
		s.double("process.cpu.time", user, "state", "user")
		s.double("process.cpu.time", sys, "state", "system")
		s.double("process.cpu.time", float64(ps.DelayAcctBlkIOTicks)/userHZ, "state", "wait")
		cur[p.PID] = procSample{user: user, system: sys, start: startTicks}
		if prev, ok := h.prevProc[p.PID]; ok && prev.start == startTicks && dt > 0 && h.ncpu > 0 {
			den := dt * float64(h.ncpu)
			s.double("process.cpu.utilization", (user-prev.user)/den, "state", "user")
			s.double("process.cpu.utilization", (sys-prev.system)/den, "state", "system")
			s.double("process.cpu.utilization", 0, "state", "wait")
		}
		rss := int64(ps.ResidentMemory())
		s.int("process.memory.usage", rss)
		s.int("process.memory.virtual", int64(ps.VirtualMemory()))
		if memTotal > 0 {
			s.double("process.memory.utilization", float64(rss)/float64(memTotal))
		}
		if on["process.disk.io"] || on["process.disk.operations"] {
			if io, err := p.IO(); err == nil {
				s.int("process.disk.io", int64(io.ReadBytes), "direction", "read")
				s.int("process.disk.io", int64(io.WriteBytes), "direction", "write")
				s.int("process.disk.operations", int64(io.SyscR), "direction", "read")
				s.int("process.disk.operations", int64(io.SyscW), "direction", "write")
			} else if !mute(pc.MuteProcessIOError) {
				errs = append(errs, fmt.Sprintf("pid %d: read io: %v", p.PID, err))
			}
		}
		s.int("process.threads", int64(ps.NumThreads))
		if on["process.open_file_descriptors"] {
			if n, err := p.FileDescriptorsLen(); err == nil {
				s.int("process.open_file_descriptors", int64(n))
			}
		}
		s.int("process.paging.faults", int64(ps.MajFlt), "type", "major")
		s.int("process.paging.faults", int64(ps.MinFlt), "type", "minor")
		if on["process.context_switches"] {
			if stErr == nil {
				s.int("process.context_switches", int64(st.VoluntaryCtxtSwitches), "type", "voluntary")
				s.int("process.context_switches", int64(st.NonVoluntaryCtxtSwitches), "type", "involuntary")
			}
		}
		if on["process.uptime"] {
			s.double("process.uptime", now.Sub(start.AsTime()).Seconds())
		}
	}
	h.prevProc = cur
	if len(errs) > 0 {
		return fmt.Errorf("%d process errors, first: %s", len(errs), errs[0])
	}
	return nil
}
