"""Taichi kernels of the DEM: integration and per-particle force gathers.

Every kernel loops over particles; a particle sums the forces of its own
neighbour-list rows in their stored order, so no two threads write the same
number and runs are bit-identical (no floating-point atomic adds). Each pair
is therefore evaluated twice, once from each side; all pair terms are
antisymmetric in IEEE arithmetic, so Newton's third law holds exactly and
the two copies of a contact's tangential history stay exact negatives.

Vectors are z-y-x ordered. That basis is left-handed, so cross products of
z-y-x components carry a minus sign (:func:`crs`). Internal units are SI.

The state lives in one set of taichi fields per process (:class:`Engine`),
sized with room to grow; a simulation loads its state into them when it
runs. Kernels read the fields as globals: passing arrays as kernel
arguments costs about 13 µs each per launch, more than a step of a few
hundred particles.
"""

import numpy as np
import taichi as ti

vec3 = ti.types.vector(3, ti.f64)
MAX_KINDS = 4

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
P_BOND_E = 15      # bond Young's modulus (Pa)
P_BOND_NU = 16
P_BOND_RADIUS = 17  # bond radius as a fraction of the smaller particle radius
P_BOND_SIGMA = 18  # tensile strength (Pa)
P_BOND_TAU = 19    # shear strength (Pa)
P_BOND_ZETA = 20   # bond damping ratio
N_PAR = 21
BATCH = 256        # most steps launched between two reads of the engine's state


@ti.func
def crs(a, b):
    """Cross product of two z-y-x ordered vectors."""
    return -a.cross(b)


@ti.func
def hertz_mindlin(delta, n, vrel, reff, meff, estar, gstar, alpha, mu, hist, dt):
    """Hertz normal + Mindlin tangential force on the first body.

    ``n`` points from the first body towards the second, ``vrel`` is the
    velocity of the first body's contact point relative to the second's.
    Returns the normal force vector, the tangential force vector, the new
    tangential history, the elastic normal force and the stored energy.
    """
    sq = ti.sqrt(reff * delta)
    kn = 4.0 / 3.0 * estar * sq
    kt = 8.0 * gstar * sq
    gn = alpha * ti.sqrt(2.0 * estar * sq * meff)
    gt = alpha * ti.sqrt(kt * meff)
    vn = vrel.dot(n)
    vt = vrel - vn * n
    fn_el = kn * delta
    fn = fn_el + gn * vn
    h = hist - hist.dot(n) * n
    h += vt * dt
    ft = -kt * h - gt * vt
    ftn = ft.norm()
    flim = mu * ti.abs(fn)
    if ftn > flim:
        ft *= flim / ftn
        h = -(ft + gt * vt) / kt
    energy = 0.4 * fn_el * delta + 0.5 * kt * h.dot(h)
    return -fn * n, ft, h, fn_el, energy


@ti.func
def rolling_torque(wrel, n, reff, fn_el, mur, ieff, dt):
    """Constant directional rolling-resistance torque on the first body.

    ``M = -mu_r R* F_n w_t/|w_t|``, capped so that it cannot reverse the
    relative rolling within one step.
    """
    wt = wrel - wrel.dot(n) * n
    wn = wt.norm()
    out = vec3(0.0, 0.0, 0.0)
    if wn > 0.0:
        mag = ti.min(mur * reff * fn_el, ieff * wn / dt)
        out = -mag / wn * wt
    return out


class Engine:
    """Taichi fields for up to ``n_cap`` particles, ``c_cap`` contact rows and
    ``b_cap`` bond rows, and the kernels that work on them."""

    def __init__(self, n_cap, c_cap, b_cap):
        self.n_cap, self.c_cap, self.b_cap = n_cap, c_cap, b_cap
        vf = lambda shape: ti.Vector.field(3, ti.f64, shape=shape)
        self.x, self.v, self.w, self.f, self.t, self.x_ref = (vf(n_cap) for _ in range(6))
        self.q = ti.field(ti.f64, shape=(n_cap, 4))
        self.radius, self.mass, self.inertia, self.inv_m, self.inv_i, self.f_head, self.e_elastic = (
            ti.field(ti.f64, shape=n_cap) for _ in range(7))
        self.kind, self.fixed = ti.field(ti.i32, shape=n_cap), ti.field(ti.i32, shape=n_cap)
        self.wall_hist = vf((n_cap, 2))
        self.nb_start, self.bd_start = ti.field(ti.i32, shape=n_cap + 1), ti.field(ti.i32, shape=n_cap + 1)
        self.nb_j, self.nb_hist = ti.field(ti.i32, shape=c_cap), vf(c_cap)
        self.bd_j, self.bd_d0, self.bd_intact, self.bd_hist = (
            ti.field(ti.i32, shape=b_cap), ti.field(ti.f64, shape=b_cap), ti.field(ti.i32, shape=b_cap), vf(b_cap))
        self.pair_tab = ti.field(ti.f64, shape=(MAX_KINDS * MAX_KINDS, 5))
        self.wall_tab = ti.field(ti.f64, shape=(MAX_KINDS, 5))
        self.par = ti.field(ti.f64, shape=N_PAR)
        self.max_disp2 = ti.field(ti.f64, shape=())
        # a batch of steps: head height and velocity per step (m, m/s), the
        # steps launched, the steps done, the particle count; dt (s), trigger (m^2)
        self.head_z, self.head_vz = ti.field(ti.f64, shape=BATCH), ti.field(ti.f64, shape=BATCH)
        self.batch_i, self.batch_f = ti.field(ti.i32, shape=3), ti.field(ti.f64, shape=2)
        self.owner = None
        self.forces_now, self.step_batched, self.close_batch = _make_kernels(self)
        self._batches = {}

    def run_batch(self, k):
        """Launch ``k`` steps (:func:`step_batched`) and the closing kick.

        The launches go through a compiled taichi graph (one per ``k``,
        cached): a launch from Python costs about 30 µs, as much as a step
        of a few hundred particles; from a graph about 1 µs.
        """
        graph = self._batches.get(k)
        if graph is None:
            builder = ti.graph.GraphBuilder()
            for _ in range(k):
                builder.dispatch(self.step_batched)
            builder.dispatch(self.close_batch)
            graph = self._batches[k] = builder.compile()
        graph.run({})

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
    f_head, e_elastic, kind, fixed, wall_hist = eng.f_head, eng.e_elastic, eng.kind, eng.fixed, eng.wall_hist
    nb_start, nb_j, nb_hist = eng.nb_start, eng.nb_j, eng.nb_hist
    bd_start, bd_j, bd_d0, bd_hist, bd_intact = eng.bd_start, eng.bd_j, eng.bd_d0, eng.bd_hist, eng.bd_intact
    pair_tab, wall_tab, par, max_disp2 = eng.pair_tab, eng.wall_tab, eng.par, eng.max_disp2
    head_zs, head_vzs, batch_i, batch_f = eng.head_z, eng.head_vz, eng.batch_i, eng.batch_f

    @ti.func
    def half_kick(i, dt):
        """Half kick of velocity Verlet (fixed particles stay at rest)."""
        if fixed[i] != 0:
            v[i] = vec3(0.0, 0.0, 0.0)
            w[i] = vec3(0.0, 0.0, 0.0)
        else:
            v[i] += 0.5 * dt * inv_m[i] * f[i]
            w[i] += 0.5 * dt * inv_i[i] * t[i]

    @ti.func
    def first_half(i, dt):
        """Half kick, drift, rotate; track the largest move since the last list build."""
        if True:
            half_kick(i, dt)
            if fixed[i] == 0:
                x[i] += dt * v[i]
                # quaternion (w, qx, qy, qz); world angular velocity in x-y-z order
                ox, oy, oz = w[i][2], w[i][1], w[i][0]
                q0, q1, q2, q3 = q[i, 0], q[i, 1], q[i, 2], q[i, 3]
                h = 0.5 * dt
                n0 = q0 + h * (-ox * q1 - oy * q2 - oz * q3)
                n1 = q1 + h * (ox * q0 + oy * q3 - oz * q2)
                n2 = q2 + h * (oy * q0 + oz * q1 - ox * q3)
                n3 = q3 + h * (oz * q0 + ox * q2 - oy * q1)
                norm = ti.sqrt(n0 * n0 + n1 * n1 + n2 * n2 + n3 * n3)
                q[i, 0] = n0 / norm
                q[i, 1] = n1 / norm
                q[i, 2] = n2 / norm
                q[i, 3] = n3 / norm
            d = x[i] - x_ref[i]
            ti.atomic_max(max_disp2[None], d.dot(d))


    @ti.func
    def forces(i, dt, head_z, head_vz):
        """Forces and torques on every particle, gathered over its rows.

        ``pair_tab[a*K+b]`` and ``wall_tab[a]`` hold (E*, G*, alpha, mu, mu_r).
        ``f_head[i]`` is the z force particle ``i`` exerts on the head (N),
        ``e_elastic[i]`` its share of the stored elastic energy (J).
        """
        if True:
            xi, vi, wi = x[i], v[i], w[i]
            ri, mi, ii, ki = radius[i], mass[i], inertia[i], kind[i]
            fi = mi * vec3(par[P_ACC], par[P_ACC + 1], par[P_ACC + 2]) - par[P_DAMP] * mi * vi
            ti_ = -par[P_DAMP] * ii * wi
            energy = ti.f64(0.0)
            for k in range(nb_start[i], nb_start[i + 1]):
                j = nb_j[k]
                d = x[j] - xi
                dist = d.norm()
                delta = ri + radius[j] - dist
                if delta > 0.0:
                    nrm = d / dist
                    c = ki * MAX_KINDS + kind[j]
                    reff = ri * radius[j] / (ri + radius[j])
                    meff = mi * mass[j] / (mi + mass[j])
                    vrel = vi - v[j] + crs(ri * wi + radius[j] * w[j], nrm)
                    fn, ft, h, fn_el, e = hertz_mindlin(
                        delta, nrm, vrel, reff, meff, pair_tab[c, 0], pair_tab[c, 1],
                        pair_tab[c, 2], pair_tab[c, 3], nb_hist[k], dt)
                    nb_hist[k] = h
                    fi += fn + ft
                    ieff = ii * inertia[j] / (ii + inertia[j])
                    ti_ += crs(ri * nrm, ft) + rolling_torque(
                        wi - w[j], nrm, reff, fn_el, pair_tab[c, 4], ieff, dt)
                    energy += 0.5 * e
                else:
                    nb_hist[k] = vec3(0.0, 0.0, 0.0)
            for k in range(bd_start[i], bd_start[i + 1]):
                if bd_intact[k] != 0:
                    j = bd_j[k]
                    d = x[j] - xi
                    dist = d.norm()
                    nrm = d / dist
                    rb = par[P_BOND_RADIUS] * ti.min(ri, radius[j])
                    area = 3.141592653589793 * rb * rb
                    kn = par[P_BOND_E] * area / bd_d0[k]
                    kt = kn / (2.0 * (1.0 + par[P_BOND_NU]))
                    meff = mi * mass[j] / (mi + mass[j])
                    vrel = vi - v[j] + crs(ri * wi + radius[j] * w[j], nrm)
                    vn = vrel.dot(nrm)
                    vt = vrel - vn * nrm
                    stretch = dist - bd_d0[k]
                    h = bd_hist[k] - bd_hist[k].dot(nrm) * nrm
                    h += vt * dt
                    sigma = kn * ti.max(stretch, 0.0) / area
                    tau = kt * h.norm() / area
                    if sigma > par[P_BOND_SIGMA] or tau > par[P_BOND_TAU]:
                        bd_intact[k] = 0
                        bd_hist[k] = vec3(0.0, 0.0, 0.0)
                    else:
                        zeta = par[P_BOND_ZETA]
                        fnb = (kn * stretch - 2.0 * zeta * ti.sqrt(kn * meff) * vn) * nrm
                        ftb = -kt * h - 2.0 * zeta * ti.sqrt(kt * meff) * vt
                        bd_hist[k] = h
                        fi += fnb + ftb
                        ti_ += crs(ri * nrm, ftb)
                        energy += 0.5 * (0.5 * kn * stretch * stretch + 0.5 * kt * h.dot(h))
            # walls: rigid planes, particle of radius ri against an infinite radius
            if par[P_BOTTOM_ON] != 0.0:
                delta = ri - (xi[0] - par[P_BOTTOM_Z])
                if delta > 0.0:
                    nrm = vec3(-1.0, 0.0, 0.0)
                    vrel = vi + crs(ri * wi, nrm)
                    fn, ft, h, fn_el, e = hertz_mindlin(
                        delta, nrm, vrel, ri, mi, wall_tab[ki, 0], wall_tab[ki, 1],
                        wall_tab[ki, 2], wall_tab[ki, 3], wall_hist[i, 0], dt)
                    wall_hist[i, 0] = h
                    fi += fn + ft
                    ti_ += crs(ri * nrm, ft) + rolling_torque(wi, nrm, ri, fn_el, wall_tab[ki, 4], ii, dt)
                    energy += e
                else:
                    wall_hist[i, 0] = vec3(0.0, 0.0, 0.0)
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
                fn, ft, h, fn_el, e = hertz_mindlin(
                    delta, nrm, vrel, ri, mi, wall_tab[ki, 0], wall_tab[ki, 1],
                    wall_tab[ki, 2], wall_tab[ki, 3], wall_hist[i, 1], dt)
                wall_hist[i, 1] = h
                fi += fn + ft
                ti_ += crs(ri * nrm, ft) + rolling_torque(wi, nrm, ri, fn_el, wall_tab[ki, 4], ii, dt)
                fh = -(fn[0] + ft[0])
                energy += e
            else:
                wall_hist[i, 1] = vec3(0.0, 0.0, 0.0)
            if par[P_BOX_ON] != 0.0:
                for a in ti.static(range(4)):
                    axis = 1 + a // 2
                    side = 1.0 if a % 2 == 1 else -1.0
                    delta = ri - side * (par[P_BOX + a] - xi[axis])
                    if delta > 0.0:
                        sq = ti.sqrt(ri * delta)
                        kn = 4.0 / 3.0 * wall_tab[ki, 0] * sq
                        gn = wall_tab[ki, 2] * ti.sqrt(2.0 * wall_tab[ki, 0] * sq * mi)
                        # side = +1: the wall is above in this axis, pushes towards -axis
                        fi[axis] -= side * (kn * delta + gn * side * vi[axis])
                        energy += 0.4 * kn * delta * delta
            f[i] = fi
            t[i] = ti_
            f_head[i] = fh
            e_elastic[i] = energy


    @ti.kernel
    def forces_now(n: ti.i32, dt: ti.f64, head_z: ti.f64, head_vz: ti.f64):
        """Forces of the current state, without moving (``dt = 0`` keeps the histories)."""
        for i in range(n):
            forces(i, dt, head_z, head_vz)

    @ti.kernel
    def step_batched():
        """Step ``batch_i[0]`` of a batch, the head at ``head_z``, ``head_vz`` of that step.

        Skipped once an earlier step of the batch has moved a particle past
        ``batch_f[1]`` (m^2): the batch stops where a step-by-step loop would
        have stopped to rebuild the neighbour list, and ``batch_i[1]`` counts
        the steps done. Nothing to pass and nothing to read back, so steps
        are launched back to back without a sync. The second half kick of a
        step runs in the first loop of the next one (``close_batch`` after
        the last), one parallel loop fewer per step.
        """
        s = batch_i[0]
        go = s == 0 or max_disp2[None] <= batch_f[1]
        kick = s > 0 and batch_i[1] == s
        n, dt = batch_i[2], batch_f[0]
        for i in range(n):
            if kick:
                half_kick(i, dt)
            if go:
                first_half(i, dt)
        for i in range(n):
            if go:
                forces(i, dt, head_zs[s], head_vzs[s])
        batch_i[0] = s + 1
        if go:
            batch_i[1] = s + 1

    @ti.kernel
    def close_batch():
        """The second half kick of the last step of a batch."""
        n, dt = batch_i[2], batch_f[0]
        kick = batch_i[1] == batch_i[0]
        for i in range(n):
            if kick:
                half_kick(i, dt)

    return forces_now, step_batched, close_batch


_ENGINE = {}


def engine(arch, n, c, b):
    """The process-wide engine for ``arch`` with room for n particles, c contact rows, b bond rows.

    Grows (new fields, kernels compiled again) when a size does not fit.
    """
    for other in [a for a in _ENGINE if a != arch]:
        del _ENGINE[other]  # its fields died when taichi was initialised for ``arch``
    e = _ENGINE.get(arch)
    if e is None or e.n_cap < n or e.c_cap < c or e.b_cap < b:
        old = e
        grow = (lambda need, cap: max(need, 2 * cap)) if old else (lambda need, cap: max(need, cap))
        if old is not None and old.owner is not None:
            old.owner._save()
        e = Engine(grow(n, old.n_cap if old else 1024), grow(c, old.c_cap if old else 16384),
                   grow(b, old.b_cap if old else 4096))
        _ENGINE[arch] = e
    return e
