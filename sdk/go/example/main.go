// Command example posts to the lobby and prints what arrives (make run
// first; TOKEN is the dev token it prints).
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	tigerchat "tigerchat/sdk/go"
)

func main() {
	ctx := context.Background()
	c, err := tigerchat.Dial(ctx, tigerchat.Options{URL: "http://127.0.0.1:8090", Token: os.Getenv("TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.CreateRoom(ctx, "lobby", tigerchat.RoomOptions{}) // room_exists the second time
	sub, err := c.Subscribe(ctx, "lobby", tigerchat.SubscribeOptions{Since: tigerchat.Seq(0)})
	if err != nil {
		log.Fatal(err)
	}
	r, err := c.Post(ctx, "lobby", "hello from Go")
	fmt.Println("posted seq", r.Seq, err)
	for ev := range sub.Events() {
		if ev.Type == tigerchat.EventMessage {
			fmt.Printf("%d %s: %s\n", ev.Message.Seq, ev.Message.Author, ev.Message.Body)
		}
	}
}
