package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("todo", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9000", "listen address (host:port; port 0 picks a free one)")
	subjectHeader := fs.String("subject-header", defaultSubject, "header carrying the authenticated subject, set by the guard")
	identityPrefix := fs.String("identity-prefix", defaultIdPrefix, "prefix of the identity headers the whoami tool reports")
	allowAnyHost := fs.Bool("allow-any-host", false, "turn off DNS-rebinding protection (only behind a proxy that forwards a public Host to a loopback listener)")
	verbose := fs.Bool("v", false, "log every request (method, path, and whether identity/Authorization headers were present; never their values)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	a := newApp(config{
		SubjectHeader:  *subjectHeader,
		IdentityPrefix: *identityPrefix,
		AllowAnyHost:   *allowAnyHost,
		Logger:         logger,
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("todo: listen: %w", err)
	}
	srv := &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("todo: MCP server listening", "url", "http://"+ln.Addr().String()+mcpPath, "health", "http://"+ln.Addr().String()+healthPath)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("todo: serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("todo: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Streams (SSE) may still be open: close them.
		_ = srv.Close()
	}
	return nil
}
