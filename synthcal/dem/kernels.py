"""Taichi kernels of the DEM: pair forces, per-particle gathers, integration.

A step has two phases. In the pair phase each contact pair (``i < j``, one
row of the half neighbour list) and each bond is evaluated once; its force
on ``i``, its lever and its rolling torque go to that pair's own slots.
In the particle phase each particle sums the slots of its pairs (force
``+F`` where it is the first of the pair, ``-F`` where it is the second) in
a fixed order, adds the wall forces and integrates. No two threads write the
same number and no float is added atomically, so runs are bit-identical,
and Newton's third law holds exactly.

Two drivers run the same pair and particle functions:

- ``cpu``: one kernel launch per batch of steps. The kernel starts one task
  per worker thread of taichi's pool and the threads keep to fixed ranges of
  pairs and particles; they meet at a spin barrier after each phase. A
  taichi parallel loop costs about 17 µs to start on the CPU (its thread
  pool sleeps between loops), a third of a step of a thousand particles; a
  barrier costs about 1 µs. The threads need a CPU each while they run:
  :mod:`analysis._taichi` pins taichi's workers one per CPU, and on a
  machine busy with other work ``SYNTHCAL_DEM_THREADS`` lowers their number.
- ``loops``: one parallel loop per phase, the steps of a batch launched
  together from a compiled taichi graph. Used on the GPU, where threads of
  a kernel cannot wait for each other.

Vectors are z-y-x ordered. That basis is left-handed, so cross products of
z-y-x components carry a minus sign (:func:`crs`). Internal units are SI.

The state lives in one set of taichi fields per process (:class:`Engine`),
sized with room to grow; a simulation loads its state into them when it
runs. Kernels read the fields as globals: passing arrays as kernel
arguments costs about 13 µs each per launch. Fields are updated with plain
stores (``a[i] = a[i] + b``): ``a[i] += b`` in a parallel loop is an atomic
add in taichi, a compare-and-swap loop for floats that made the integration
several times slower.
"""

import os
import types

import numpy as np
import taichi as ti

vec3 = ti.types.vector(3, ti.f64)
MAX_KINDS = 4
MAX_THREADS = 64
LINE = 16          # 4-byte words per cache line and a spare: keeps what threads write apart

# Indices into the static parameter array ``par`` (see simulation.Simulation).
P_ACC = 0          # 3 entries: body acceleration z, y, x (m/s^2)
P_DAMP = 3         # background damping rate (1/s)
P_BOTTOM_ON = 4
P_BOTTOM_Z = 5
P_BOX_ON = 6
P_BOX = 7          # 4 entries: y_lo, y_hi, x_lo, x_hi (m)
P_HEAD_ON = 11
P_HEAD_R2 = 12     # head disc radius squared (m^2), < 0 for an infinite plane
P_HEAD_CY = 13
P_HEAD_CX = 14
P_ROLL_ON = 15     # 1 when some contact has rolling resistance
N_PAR = 16
# Columns of the per-bond constants ``bd_c``: normal and shear stiffness
# (N/m), bending and twisting stiffness (N m/rad), their dampings (N s/m,
# N m s/rad), the bond radius (m), and the breaking limits as lengths: a
# bond breaks when ``stretch + a |bend angle|`` exceeds ``B_TENSION`` or
# ``|shear| + a |twist angle|`` exceeds ``B_SHEAR`` (see simulation.BondModel).
(B_KN, B_KT, B_KB, B_KW, B_GN, B_GT, B_GB, B_GW, B_RADIUS, B_TENSION, B_SHEAR) = range(11)
N_BOND = 11
# Columns of the contact tables ``pair_tab[a*K+b]`` and ``wall_tab[a]``.
C_ESTAR, C_GSTAR, C_ALPHA, C_MU, C_MUR, C_SQ2E, C_SQ8G = range(7)
N_TAB = 7
BATCH = 1024       # most steps run between two reads of the engine's state
SPAN = 512         # loop iterations per thread task of the cpu driver (see Engine)


def cpu_threads():
    """Threads the cpu driver uses: taichi's pool, capped by the CPUs this process may use.

    The cap matters: threads that wait at a spin barrier for a thread the
    operating system has not scheduled burn their time slice, so there must
    not be more of them than CPUs (affinity mask and cgroup quota). On a
    machine busy with other work, ``SYNTHCAL_DEM_THREADS`` sets a lower cap
    (1: no barrier at all).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n = min(ti.lang.impl.current_cfg().cpu_max_num_threads, cpus, MAX_THREADS)
    cap = os.environ.get("SYNTHCAL_DEM_THREADS", "")
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ValueError(f"SYNTHCAL_DEM_THREADS: expected a whole number >= 1, got {cap!r}")
        n = min(n, int(cap))
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


@ti.func
def crs(a, b):
    """Cross product of two z-y-x ordered vectors."""
    return -a.cross(b)


@ti.func
def hertz_mindlin(delta, n, vrel, reff, meff, tab: ti.template(), c, hist, dt):
    """Hertz normal + Mindlin tangential force on the first body.

    ``n`` points from the first body towards the second, ``vrel`` is the
    velocity of the first body's contact point relative to the second's,
    ``tab[c, :]`` the contact constants. Returns the normal force vector,
    the tangential force vector, the new tangential history and the elastic
    normal force.
    """
    sq = ti.sqrt(reff * delta)
    kn = 4.0 / 3.0 * tab[c, C_ESTAR] * sq
    kt = 8.0 * tab[c, C_GSTAR] * sq
    # alpha sqrt(S m*) for S = 2 E* sq (normal) and 8 G* sq (tangential)
    root = tab[c, C_ALPHA] * ti.sqrt(sq * meff)
    gn = tab[c, C_SQ2E] * root
    gt = tab[c, C_SQ8G] * root
    vn = vrel.dot(n)
    vt = vrel - vn * n
    fn_el = kn * delta
    fn = fn_el + gn * vn
    h = hist - hist.dot(n) * n
    h += vt * dt
    ft = -kt * h - gt * vt
    ftn2 = ft.dot(ft)
    flim = tab[c, C_MU] * ti.abs(fn)
    if ftn2 > flim * flim:
        ft *= flim / ti.sqrt(ftn2)
        h = -(ft + gt * vt) / kt
    return -fn * n, ft, h, fn_el


@ti.func
def rolling_torque(wrel, n, reff, fn_el, mur, ieff, dt):
    """Constant directional rolling-resistance torque on the first body.

    ``M = -mu_r R* F_n w_t/|w_t|``, capped so that it cannot reverse the
    relative rolling within one step.
    """
    out = vec3(0.0, 0.0, 0.0)
    if mur > 0.0:
        wt = wrel - wrel.dot(n) * n
        wn = wt.norm()
        if wn > 0.0:
            mag = ti.min(mur * reff * fn_el, ieff * wn / dt)
            out = -mag / wn * wt
    return out


class Engine:
    """Taichi fields for up to ``n_cap`` particles, ``c_cap`` contact pairs
    and ``b_cap`` bonds, and the kernels that work on them."""

    def __init__(self, n_cap, c_cap, b_cap, driver):
        self.n_cap, self.c_cap, self.b_cap, self.driver = n_cap, c_cap, b_cap, driver
        self.threads = cpu_threads() if driver == "cpu" else 1
        vf = lambda shape: ti.Vector.field(3, ti.f64, shape=shape)
        f64 = lambda shape: ti.field(ti.f64, shape=shape)
        i32 = lambda shape: ti.field(ti.i32, shape=shape)
        self.x, self.v, self.w, self.f, self.t, self.x_ref = (vf(n_cap) for _ in range(6))
        self.q = f64((n_cap, 4))
        self.radius, self.mass, self.inertia, self.inv_m, self.inv_i, self.f_head, self.e_wall = (
            f64(n_cap) for _ in range(7))
        # largest elastic normal contact force on each particle (N) and the force it breaks at (N)
        self.load, self.strength = f64(n_cap), f64(n_cap)
        self.kind, self.fixed = i32(n_cap), i32(n_cap)
        self.wall_hist = vf((n_cap, 2))
        # contact pairs: ends, tangential history (seen from i), force on i,
        # its lever n x F_t per unit radius (the same for j), rolling torque
        # on i (-that on j), elastic energy; rows: pair p as p (i) or -1-p (j)
        self.pr_i, self.pr_j, self.pr_hist = i32(c_cap), i32(c_cap), vf(c_cap)
        self.pr_f, self.pr_arm, self.pr_roll, self.pr_e = vf(c_cap), vf(c_cap), vf(c_cap), f64(c_cap)
        self.pr_fn = f64(c_cap)  # elastic normal force (N)
        self.nb_start, self.nb_row = i32(n_cap + 1), i32(2 * c_cap)
        # bonds, likewise, plus rest length, state (shear displacement and
        # relative rotation, both seen from i) and the moment on i (-that on j)
        self.bd_i, self.bd_j, self.bd_d0, self.bd_intact, self.bd_hist, self.bd_rot = (
            i32(b_cap), i32(b_cap), f64(b_cap), i32(b_cap), vf(b_cap), vf(b_cap))
        self.bd_c = ti.Vector.field(N_BOND, ti.f64, shape=b_cap)
        self.bd_f, self.bd_arm, self.bd_mom, self.bd_e = vf(b_cap), vf(b_cap), vf(b_cap), f64(b_cap)
        self.bd_start, self.bd_row = i32(n_cap + 1), i32(2 * b_cap)
        self.pair_tab, self.wall_tab = f64((MAX_KINDS * MAX_KINDS, N_TAB)), f64((MAX_KINDS, N_TAB))
        self.par = f64(N_PAR)
        # largest squared move since the last list build (m^2), one slot per
        # thread, each on a cache line of its own
        self.disp2 = f64(MAX_THREADS * LINE // 2)
        # a batch of steps: head height and velocity per step (m, m/s); steps
        # done (the cpu driver: negative when the trigger fired); for the
        # loops driver also particles, pairs, bonds, steps launched, and dt
        # (s), trigger (m^2)
        self.head_z, self.head_vz = f64(BATCH), f64(BATCH)
        self.batch_i, self.batch_f = i32(5), f64(2)
        # spin-barrier counter in the middle of a field of its own (the
        # waiting threads hammer its cache line), read through an index
        # taichi cannot fold (a counter at a constant index would become a
        # thread-local sum)
        self.barrier, self.at = i32(4 * LINE), i32(())
        self.spins = i32((MAX_THREADS + 2) * LINE)
        self.owner = None
        self._track = None
        self.kernels = _make_kernels(self)
        self.at[None] = 2 * LINE
        self._graphs = {}

    def run_batch(self, counts, dt, trigger, head_z, head_vz):
        """Run up to ``len(head_z)`` (at most ``BATCH``) steps.

        Parameters
        ----------
        counts : (int, int, int)
            Particles, contact pairs and bonds of the loaded simulation.
        dt : float
            Time step (s).
        trigger : float
            Squared move since the last list build (m^2) after which the
            batch ends: the step that crosses it is the last.
        head_z, head_vz : (k,) float arrays
            Head height (m) and velocity (m/s) during each step.

        Returns
        -------
        done : int
            Steps run.
        fired : bool
            Whether the trigger ended the batch.
        """
        k = len(head_z)
        # each copy into a field costs 0.1-0.5 ms of taichi overhead: only when the track changed
        track = (np.asarray(head_z, np.float64).tobytes(), np.asarray(head_vz, np.float64).tobytes())
        if track != self._track:
            self.head_z.from_numpy(np.pad(head_z, (0, BATCH - k)))
            self.head_vz.from_numpy(np.pad(head_vz, (0, BATCH - k)))
            self._track = track
        n, m, nb = counts
        if self.driver == "cpu":
            r = self.kernels.run_threads(k, n, m, nb, dt, trigger)
            return abs(r), r < 0
        self.batch_i.from_numpy(np.array([0, n, m, nb, 0], np.int32))
        self.batch_f.from_numpy(np.array([dt, trigger]))
        graph = self._graphs.get(k)
        if graph is None:
            builder = ti.graph.GraphBuilder()
            for _ in range(k):
                builder.dispatch(self.kernels.step_loops)
            builder.dispatch(self.kernels.close_loops)
            graph = self._graphs[k] = builder.compile()
        graph.run({})
        return int(self.batch_i[0]), bool(self.disp2[0] > trigger)

    def put(self, field, values):
        """Copy ``values`` into the leading rows of ``field``."""
        values = np.asarray(values)
        if len(values) == 0:
            return
        full = np.zeros(field.shape + values.shape[len(field.shape):], dtype=values.dtype)
        full[:len(values)] = values
        field.from_numpy(full)

    def get(self, field, count):
        """The leading ``count`` rows of ``field`` as a numpy array."""
        return field.to_numpy()[:count]


def _make_kernels(eng):
    """The kernels bound to the fields of engine ``eng``."""
    x, v, w, f, t, x_ref, q = eng.x, eng.v, eng.w, eng.f, eng.t, eng.x_ref, eng.q
    radius, mass, inertia, inv_m, inv_i = eng.radius, eng.mass, eng.inertia, eng.inv_m, eng.inv_i
    f_head, e_wall, kind, fixed, wall_hist = eng.f_head, eng.e_wall, eng.kind, eng.fixed, eng.wall_hist
    load, strength, pr_fn = eng.load, eng.strength, eng.pr_fn
    pr_i, pr_j, pr_hist, pr_f, pr_arm, pr_roll, pr_e = (
        eng.pr_i, eng.pr_j, eng.pr_hist, eng.pr_f, eng.pr_arm, eng.pr_roll, eng.pr_e)
    nb_start, nb_row, bd_start, bd_row = eng.nb_start, eng.nb_row, eng.bd_start, eng.bd_row
    bd_i, bd_j, bd_d0, bd_intact, bd_hist, bd_rot, bd_c = (
        eng.bd_i, eng.bd_j, eng.bd_d0, eng.bd_intact, eng.bd_hist, eng.bd_rot, eng.bd_c)
    bd_f, bd_arm, bd_mom, bd_e = eng.bd_f, eng.bd_arm, eng.bd_mom, eng.bd_e
    pair_tab, wall_tab, par, disp2 = eng.pair_tab, eng.wall_tab, eng.par, eng.disp2
    head_zs, head_vzs, batch_i, batch_f = eng.head_z, eng.head_vz, eng.batch_i, eng.batch_f
    barrier_count, at, spins = eng.barrier, eng.at, eng.spins
    n_threads = eng.threads
    zero3 = vec3(0.0, 0.0, 0.0)

    @ti.func
    def advance(i, fi, ti_, h, dt, move):
        """Kick particle ``i`` by ``h`` seconds of force ``fi`` and torque ``ti_``,
        then, if ``move``, drift and rotate it by ``dt``.

        Fixed particles stay at rest. Returns the squared move since the
        last list build (0 without ``move``).
        """
        vi, wi = zero3, zero3
        if fixed[i] == 0:
            vi = v[i] + h * inv_m[i] * fi
            wi = w[i] + h * inv_i[i] * ti_
        v[i] = vi
        w[i] = wi
        moved = 0.0
        if move:
            xi = x[i]
            if fixed[i] == 0:
                xi += dt * vi
                x[i] = xi
                # quaternion (w, qx, qy, qz); world angular velocity in x-y-z order
                ox, oy, oz = wi[2], wi[1], wi[0]
                q0, q1, q2, q3 = q[i, 0], q[i, 1], q[i, 2], q[i, 3]
                hd = 0.5 * dt
                n0 = q0 + hd * (-ox * q1 - oy * q2 - oz * q3)
                n1 = q1 + hd * (ox * q0 + oy * q3 - oz * q2)
                n2 = q2 + hd * (oy * q0 + oz * q1 - ox * q3)
                n3 = q3 + hd * (oz * q0 + ox * q2 - oy * q1)
                inv_norm = 1.0 / ti.sqrt(n0 * n0 + n1 * n1 + n2 * n2 + n3 * n3)
                q[i, 0] = n0 * inv_norm
                q[i, 1] = n1 * inv_norm
                q[i, 2] = n2 * inv_norm
                q[i, 3] = n3 * inv_norm
            d = xi - x_ref[i]
            moved = d.dot(d)
        return moved

    @ti.func
    def contact(p, dt):
        """Hertz–Mindlin contact of pair ``p`` into its slots (zeros when apart)."""
        i, j = pr_i[p], pr_j[p]
        ri, rj = radius[i], radius[j]
        d = x[j] - x[i]
        dist = d.norm()
        delta = ri + rj - dist
        fi, arm, h = zero3, zero3, zero3
        fn_pair = 0.0
        if delta > 0.0:
            nrm = d / dist
            c = kind[i] * MAX_KINDS + kind[j]
            reff = ri * rj / (ri + rj)
            meff = mass[i] * mass[j] / (mass[i] + mass[j])
            vrel = v[i] - v[j] + crs(ri * w[i] + rj * w[j], nrm)
            fn, ft, h_new, fn_el = hertz_mindlin(delta, nrm, vrel, reff, meff, pair_tab, c, pr_hist[p], dt)
            h = h_new
            fn_pair = fn_el
            fi = fn + ft
            # the force on j is -F at -n: the same lever, the opposite rolling torque
            arm = crs(nrm, ft)
            if par[P_ROLL_ON] != 0.0:
                ieff = inertia[i] * inertia[j] / (inertia[i] + inertia[j])
                pr_roll[p] = rolling_torque(w[i] - w[j], nrm, reff, fn_el, pair_tab[c, C_MUR], ieff, dt)
        elif par[P_ROLL_ON] != 0.0:
            pr_roll[p] = zero3
        pr_hist[p] = h
        pr_f[p] = fi
        pr_arm[p] = arm
        pr_fn[p] = fn_pair

    @ti.func
    def bond(b, dt):
        """Bond ``b`` into its slots: springs while intact, broken for good past its strength.

        A parallel bond (Potyondy & Cundall 2004): normal and shear springs
        on the relative displacement of the bond's ends, bending and
        twisting springs on the relative rotation, each with viscous
        damping. The relative rotation is accumulated as a vector and split
        into twist (along the bond) and bending (across it) at the current
        axis, as the shear displacement is projected on the current plane.
        """
        fi, arm, mom = zero3, zero3, zero3
        if bd_intact[b] != 0:
            i, j = bd_i[b], bd_j[b]
            d = x[j] - x[i]
            dist = d.norm()
            nrm = d / dist
            vrel = v[i] - v[j] + crs(radius[i] * w[i] + radius[j] * w[j], nrm)
            vn = vrel.dot(nrm)
            vt = vrel - vn * nrm
            stretch = dist - bd_d0[b]
            h = bd_hist[b] - bd_hist[b].dot(nrm) * nrm
            h += vt * dt
            wrel = w[i] - w[j]
            rot = bd_rot[b] + wrel * dt
            twist = rot.dot(nrm)
            bend = rot - twist * nrm
            wn = wrel.dot(nrm)
            c = bd_c[b]
            if (stretch + c[B_RADIUS] * bend.norm() > c[B_TENSION]
                    or h.norm() + c[B_RADIUS] * ti.abs(twist) > c[B_SHEAR]):
                bd_intact[b] = 0
                bd_hist[b] = zero3
                bd_rot[b] = zero3
            else:
                fnb = (c[B_KN] * stretch - c[B_GN] * vn) * nrm
                ftb = -c[B_KT] * h - c[B_GT] * vt
                bd_hist[b] = h
                bd_rot[b] = rot
                fi = fnb + ftb
                arm = crs(nrm, ftb)
                mom = (-c[B_KW] * twist - c[B_GW] * wn) * nrm - c[B_KB] * bend - c[B_GB] * (wrel - wn * nrm)
        bd_f[b] = fi
        bd_arm[b] = arm
        bd_mom[b] = mom

    @ti.func
    def wall(delta, nrm, vrel, ri, mi, ii, wi, ki, i, s, dt):
        """Hertz–Mindlin contact of particle ``i`` with rigid plane ``s`` (0 foil, 1 head)."""
        fn, ft, h, fn_el = hertz_mindlin(delta, nrm, vrel, ri, mi, wall_tab, ki, wall_hist[i, s], dt)
        wall_hist[i, s] = h
        torque = crs(ri * nrm, ft) + rolling_torque(wi, nrm, ri, fn_el, wall_tab[ki, C_MUR], ii, dt)
        return fn + ft, torque, fn_el

    @ti.func
    def rows_sum(i, start: ti.template(), rows: ti.template(), force: ti.template(), lever: ti.template(),
                 moment: ti.template(), contacts: ti.template()):
        """Sums over particle ``i``'s rows of a pair list: force on it, lever,
        moment (``+M`` on the first of a pair, ``-M`` on the second). For
        ``contacts`` the moment is the rolling torque, summed only when some
        contact rolls."""
        fs, arms, moms = zero3, zero3, zero3
        for r in range(start[i], start[i + 1]):
            p = rows[r]
            sign = 1.0
            if p < 0:
                p = -1 - p
                sign = -1.0
            fs += sign * force[p]
            arms += lever[p]
            if ti.static(contacts):
                if par[P_ROLL_ON] != 0.0:
                    moms += sign * moment[p]
            else:
                moms += sign * moment[p]
        return fs, arms, moms

    @ti.func
    def gather(i, dt, head_z, head_vz):
        """Total force and torque on particle ``i``: its pairs, bonds, walls, body force.

        ``f_head[i]`` is the z force particle ``i`` exerts on the head (N);
        ``load[i]`` the largest elastic normal force of its contacts with
        particles, foil and head (N), what breaks it (see
        :mod:`synthcal.dem.fracture`).
        """
        xi, vi, wi = x[i], v[i], w[i]
        ri, mi, ii, ki = radius[i], mass[i], inertia[i], kind[i]
        fi = mi * vec3(par[P_ACC], par[P_ACC + 1], par[P_ACC + 2]) - par[P_DAMP] * mi * vi
        tqi = -par[P_DAMP] * ii * wi
        fc, arms_c, roll = rows_sum(i, nb_start, nb_row, pr_f, pr_arm, pr_roll, True)
        fb, arms_b, mom_b = rows_sum(i, bd_start, bd_row, bd_f, bd_arm, bd_mom, False)
        fi += fc + fb
        tqi += ri * (arms_c + arms_b) + roll + mom_b
        most = 0.0
        for r in range(nb_start[i], nb_start[i + 1]):
            p = nb_row[r]
            if p < 0:
                p = -1 - p
            most = ti.max(most, pr_fn[p])
        if par[P_BOTTOM_ON] != 0.0:
            delta = ri - (xi[0] - par[P_BOTTOM_Z])
            if delta > 0.0:
                nrm = vec3(-1.0, 0.0, 0.0)
                fw, tw, fn_w = wall(delta, nrm, vi + crs(ri * wi, nrm), ri, mi, ii, wi, ki, i, 0, dt)
                most = ti.max(most, fn_w)
                fi += fw
                tqi += tw
            else:
                wall_hist[i, 0] = zero3
        fh = ti.f64(0.0)
        touch_head = par[P_HEAD_ON] != 0.0
        if par[P_HEAD_R2] >= 0.0:
            dy = xi[1] - par[P_HEAD_CY]
            dx = xi[2] - par[P_HEAD_CX]
            touch_head = touch_head and dy * dy + dx * dx <= par[P_HEAD_R2]
        delta = ri - (head_z - xi[0])
        if touch_head and delta > 0.0:
            nrm = vec3(1.0, 0.0, 0.0)
            vrel = vi - vec3(head_vz, 0.0, 0.0) + crs(ri * wi, nrm)
            fw, tw, fn_w = wall(delta, nrm, vrel, ri, mi, ii, wi, ki, i, 1, dt)
            most = ti.max(most, fn_w)
            fi += fw
            tqi += tw
            fh = -fw[0]
        else:
            wall_hist[i, 1] = zero3
        if par[P_BOX_ON] != 0.0:
            for a in ti.static(range(4)):
                axis = 1 + a // 2
                side = 1.0 if a % 2 == 1 else -1.0
                delta = ri - side * (par[P_BOX + a] - xi[axis])
                if delta > 0.0:
                    sq = ti.sqrt(ri * delta)
                    kn = 4.0 / 3.0 * wall_tab[ki, C_ESTAR] * sq
                    gn = wall_tab[ki, C_ALPHA] * ti.sqrt(2.0 * wall_tab[ki, C_ESTAR] * sq * mi)
                    # side = +1: the wall is above in this axis, pushes towards -axis
                    fi[axis] -= side * (kn * delta + gn * side * vi[axis])
        f[i] = fi
        t[i] = tqi
        f_head[i] = fh
        load[i] = most
        return fi, tqi

    @ti.func
    def overloaded(i):
        """Squared "move" that pulls the rebuild trigger when particle ``i`` is loaded past its strength.

        A batch of steps reads nothing back until it ends, and it ends at
        the trigger: a particle past its strength ends it there, within a
        step, so that it breaks (:mod:`synthcal.dem.fracture`) at its
        strength and not a batch later.
        """
        out = 0.0
        if load[i] > strength[i]:
            out = ti.math.inf
        return out

    @ti.kernel
    def forces_now(n: ti.i32, m: ti.i32, nb: ti.i32, dt: ti.f64, head_z: ti.f64, head_vz: ti.f64):
        """Forces of the current state of n particles, m pairs, nb bonds, without moving
        (``dt = 0`` keeps the histories)."""
        for p in range(m):
            contact(p, dt)
        for b in range(nb):
            bond(b, dt)
        for i in range(n):
            gather(i, dt, head_z, head_vz)

    @ti.kernel
    def energies(n: ti.i32, m: ti.i32, nb: ti.i32, head_z: ti.f64) -> ti.types.vector(2, ti.f64):
        """Kinetic and stored elastic energy (J) of the current state.

        Each pair, bond and particle's walls first (in parallel), then the
        sums in index order on one thread, so that they do not depend on
        the thread count.
        """
        for p in range(m):
            i, j = pr_i[p], pr_j[p]
            delta = radius[i] + radius[j] - (x[j] - x[i]).norm()
            e = 0.0
            if delta > 0.0:
                c = kind[i] * MAX_KINDS + kind[j]
                sq = ti.sqrt(radius[i] * radius[j] / (radius[i] + radius[j]) * delta)
                e = (0.4 * 4.0 / 3.0 * pair_tab[c, C_ESTAR] * sq * delta * delta
                     + 0.5 * 8.0 * pair_tab[c, C_GSTAR] * sq * pr_hist[p].dot(pr_hist[p]))
            pr_e[p] = e
        for b in range(nb):
            e = 0.0
            if bd_intact[b] != 0:
                d = x[bd_j[b]] - x[bd_i[b]]
                stretch = d.norm() - bd_d0[b]
                twist = bd_rot[b].dot(d) / d.norm()
                bend2 = bd_rot[b].dot(bd_rot[b]) - twist * twist
                c = bd_c[b]
                e = 0.5 * (c[B_KN] * stretch * stretch + c[B_KT] * bd_hist[b].dot(bd_hist[b])
                           + c[B_KW] * twist * twist + c[B_KB] * bend2)
            bd_e[b] = e
        for i in range(n):
            ri, ki, zi = radius[i], kind[i], x[i][0]
            e = 0.0
            gaps = vec3(zi - par[P_BOTTOM_Z], head_z - zi, 0.0)
            on = vec3(par[P_BOTTOM_ON], par[P_HEAD_ON], 0.0)
            if par[P_HEAD_R2] >= 0.0:
                dy = x[i][1] - par[P_HEAD_CY]
                dx = x[i][2] - par[P_HEAD_CX]
                if dy * dy + dx * dx > par[P_HEAD_R2]:
                    on[1] = 0.0
            for s in ti.static(range(2)):
                delta = ri - gaps[s]
                if on[s] != 0.0 and delta > 0.0:
                    sq = ti.sqrt(ri * delta)
                    e += (0.4 * 4.0 / 3.0 * wall_tab[ki, C_ESTAR] * sq * delta * delta
                          + 0.5 * 8.0 * wall_tab[ki, C_GSTAR] * sq * wall_hist[i, s].dot(wall_hist[i, s]))
            if par[P_BOX_ON] != 0.0:
                for a in ti.static(range(4)):
                    side = 1.0 if a % 2 == 1 else -1.0
                    delta = ri - side * (par[P_BOX + a] - x[i][1 + a // 2])
                    if delta > 0.0:
                        e += 0.4 * 4.0 / 3.0 * wall_tab[ki, C_ESTAR] * ti.sqrt(ri * delta) * delta * delta
            e_wall[i] = e
        kinetic, elastic = 0.0, 0.0
        ti.loop_config(serialize=True)
        for k in range(ti.max(n, ti.max(m, nb))):
            if k < n:
                kinetic += 0.5 * mass[k] * v[k].dot(v[k]) + 0.5 * inertia[k] * w[k].dot(w[k])
                elastic += e_wall[k]
            if k < m:
                elastic += pr_e[k]
            if k < nb:
                elastic += bd_e[k]
        return ti.Vector([kinetic, elastic])

    @ti.kernel
    def head_force(n: ti.i32) -> ti.f64:
        """Force the particles exert on the head along +z (N), summed in index order."""
        total = 0.0
        ti.loop_config(serialize=True)
        for i in range(n):
            total += f_head[i]
        return total

    # ---- driver "loops": one parallel loop per phase -----------------------
    @ti.kernel
    def step_loops():
        """Step ``batch_i[4]`` of a batch, the head at ``head_z``, ``head_vz`` of that step.

        Skipped once an earlier step of the batch has moved a particle past
        ``batch_f[1]`` (m^2): the batch stops where a step-by-step loop would
        have stopped to rebuild the neighbour list, and ``batch_i[0]`` counts
        the steps done. The second half kick of a step runs in the first
        loop of the next one (``close_loops`` after the last).
        """
        s = batch_i[4]
        go = s == 0 or disp2[0] <= batch_f[1]
        close = s > 0 and batch_i[0] == s
        dt = batch_f[0]
        h = 0.0
        if close:
            h += 0.5 * dt
        if go:
            h += 0.5 * dt
        for i in range(batch_i[1]):
            if h > 0.0:
                ti.atomic_max(disp2[0], advance(i, f[i], t[i], h, dt, go))
        for p in range(batch_i[2]):
            if go:
                contact(p, dt)
        for b in range(batch_i[3]):
            if go:
                bond(b, dt)
        for i in range(batch_i[1]):
            if go:
                gather(i, dt, head_zs[s], head_vzs[s])
                if load[i] > strength[i]:
                    ti.atomic_max(disp2[0], overloaded(i))
        batch_i[4] = s + 1
        if go:
            batch_i[0] = s + 1

    @ti.kernel
    def close_loops():
        """The second half kick of the last step of a batch."""
        last_done = batch_i[0] == batch_i[4]
        for i in range(batch_i[1]):
            if last_done:
                advance(i, f[i], t[i], 0.5 * batch_f[0], 0.0, False)

    # ---- driver "cpu": persistent threads and a spin barrier ---------------
    @ti.func
    def barrier(u, g):
        """Thread ``u`` waits until every thread has arrived at barrier number ``g`` of this launch.

        The wait reads the counter with plain loads; an atomic add to the
        thread's own cache line in the loop keeps the compiler from hoisting
        the load. Spinning with atomics on the counter itself would fight
        over its cache line with the threads still arriving.
        """
        c = at[None]
        ti.atomic_add(barrier_count[c], 1)
        while True:
            ti.atomic_add(spins[(u + 1) * LINE], 1)
            if barrier_count[c] >= n_threads * (g + 1):
                break

    @ti.func
    def share(u, count):
        """Where thread ``u``'s share of ``count`` items starts.

        On a multiple of 16 items, so that no cache line of a per-item field
        (all start on a line, see :func:`engine`) is written by two threads:
        a line written in turn from two cores costs more than a step of a
        few hundred particles.
        """
        start = count
        if u < n_threads:
            start = (u * count // n_threads) // 16 * 16
        return start

    @ti.func
    def thread(u, k, n, m, nb, dt, trigger):
        """The steps of a batch for thread ``u``: its share of pairs, bonds and particles."""
        i0, i1 = share(u, n), share(u + 1, n)
        p0, p1 = share(u, m), share(u + 1, m)
        b0, b1 = share(u, nb), share(u + 1, nb)
        slot = u * (LINE // 2)
        moved = disp2[slot]
        for i in range(i0, i1):
            moved = ti.max(moved, advance(i, f[i], t[i], 0.5 * dt, dt, True))
        disp2[slot] = moved
        barrier(u, 0)
        done = 0
        for s in range(k):
            # every thread reads the same slots here, so all take the same turn
            largest = 0.0
            for other in range(n_threads):
                largest = ti.max(largest, disp2[other * (LINE // 2)])
            go_on = s + 1 < k and largest <= trigger
            for p in range(p0, p1):
                contact(p, dt)
            for b in range(b0, b1):
                bond(b, dt)
            barrier(u, 2 * s + 1)
            for i in range(i0, i1):
                fi, tqi = gather(i, dt, head_zs[s], head_vzs[s])
                # with go_on, the second half kick of this step and the first of the next
                moved = ti.max(moved, advance(i, fi, tqi, 0.5 * dt * (1.0 + go_on), dt, go_on))
                moved = ti.max(moved, overloaded(i))
            disp2[slot] = moved
            barrier(u, 2 * s + 2)
            done = s + 1
            if not go_on:
                break
        if u == 0:
            largest = 0.0
            for other in range(n_threads):
                largest = ti.max(largest, disp2[other * (LINE // 2)])
            batch_i[0] = -done if largest > trigger else done

    @ti.kernel
    def run_threads(k: ti.i32, n: ti.i32, m: ti.i32, nb: ti.i32, dt: ti.f64, trigger: ti.f64) -> ti.i32:
        """``k`` steps, stopping after the one that pulls the rebuild trigger.

        Returns the steps done, negative when the trigger fired.

        The loop has ``SPAN`` iterations per thread and only the first of
        each span works: taichi hands a CPU loop to its threads in blocks of
        at least 512 iterations, so a loop of one iteration per thread would
        run on one thread and wait at the first barrier for ever.
        """
        barrier_count[at[None]] = 0
        ti.loop_config(block_dim=SPAN)
        for it in range(n_threads * SPAN):
            if it % SPAN == 0:
                thread(it // SPAN, k, n, m, nb, dt, trigger)
        return batch_i[0]

    out = types.SimpleNamespace()
    out.forces_now, out.energies, out.head_force = forces_now, energies, head_force
    out.step_loops, out.close_loops, out.run_threads = step_loops, close_loops, run_threads
    return out


_ENGINE = {}


def engine(arch, n, c, b, driver=None):
    """The process-wide engine for ``arch`` with room for n particles, c contact pairs, b bonds.

    ``driver`` is ``"cpu"`` (the default on the CPU) or ``"loops"`` (the
    only one on the GPU). Grows (new fields, kernels compiled again) when a
    size does not fit.
    """
    driver = driver or ("cpu" if arch == "cpu" else "loops")
    if arch != "cpu" and driver != "loops":
        raise ValueError(f"driver: {driver!r} runs on the CPU only")
    key = (arch, driver)
    for other in [a for a in _ENGINE if a[0] != arch]:
        del _ENGINE[other]  # its fields died when taichi was initialised for ``arch``
    e = _ENGINE.get(key)
    if e is None or e.n_cap < n or e.c_cap < c or e.b_cap < b:
        old = e
        grow = (lambda need, cap: max(need, 2 * cap)) if old else (lambda need, cap: max(need, cap))
        if old is not None and old.owner is not None:
            old.owner._save()
        # multiples of 64 items: every field then starts on a cache line
        line = lambda size: -(-size // 64) * 64
        e = Engine(line(grow(n, old.n_cap if old else 1024)), line(grow(c, old.c_cap if old else 8192)),
                   line(grow(b, old.b_cap if old else 4096)), driver)
        _ENGINE[key] = e
    return e
